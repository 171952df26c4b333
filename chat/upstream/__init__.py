"""The LLM gateway and only the gateway: neutral requests (``request``) encoded per API
(``encoding``, ``responses_api``, ``chat_completions``), HTTP client, SSE parsing, translation
of the answers into events.

Nothing in this package imports Django, so it can be tested and benchmarked on its own.
"""
