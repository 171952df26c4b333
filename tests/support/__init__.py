"""Helpers shared by the tests that start real processes (browser and multi-process tests).

``processes``: running ``manage.py`` and Daphne workers; ``databases``: PostgreSQL databases and
Redis prefixes of a cluster, and SQL on them; ``seed``: creating accounts and data in a running
app's database; ``htmx``: reading server-pushed fragments the way htmx applies them;
``static_files``: the static files collected once per session (hashed names).
"""
