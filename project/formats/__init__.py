"""Our changes to Django's per-language formats (``FORMAT_MODULE_PATH``); the rest is Django's."""
