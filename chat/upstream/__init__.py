"""The LLM gateway and only the gateway: HTTP client, SSE parsing, API translation, demo server.

Nothing in this package imports Django, so it can be tested and benchmarked on its own.
"""
