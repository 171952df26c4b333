"""HTTP views: parse, authorize (``thread_access``), call a service, render. One module per page
or panel; the product's logic lives in ``chat.services``.

``pages`` (new chat, thread page, earlier turns, model list), ``threads`` (model, rename, delete,
export), ``thread_settings`` (settings panel, presets), ``sharing`` (sharing panel), ``search``,
``tool_library``, ``image_viewer`` (``/image/``), ``accounts`` (first run, sign-up), ``login``
(throttled login forms), ``lockouts`` and ``staff`` (staff pages).
"""
