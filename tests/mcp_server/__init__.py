"""A small MCP server for the tests, the benchmark and the README.

Run it: ``python -m tests.mcp_server``."""
