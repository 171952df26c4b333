"""Switchboard as an OpenAI-compatible API (``/api/v1``) for scripts and tools, with personal keys.

``keys`` (create, hash, revoke), ``auth`` (Bearer key → caller, brute-force throttle),
``validation`` (request bodies checked with the chat's parameter specs), ``routing`` (model →
provider, the models a caller may use, the single place for access/budget checks), ``relay``
(upstream bytes to the client, fallbacks before the first byte, usage and audit), ``views``.
"""
