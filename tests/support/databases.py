"""The PostgreSQL databases and Redis key prefixes of a multi-process test, and SQL on them."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest


def services() -> tuple[str, str]:
    """``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL``; fails the test, saying how to start
    them, when they are not set."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        pytest.fail(
            "the multi-process tests need PostgreSQL and Redis: run `make test-scaleout`, or set "
            'DATABASE_URL=postgres://… and REDIS_URL=redis://… (e.g. eval "$(bash '
            '.ci/services.sh)") before pytest',
            pytrace=False,
        )
    return database_url, redis_url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(database_url: str):
    import psycopg

    return psycopg.connect(database_url, dbname="postgres", autocommit=True, connect_timeout=10)


def create_database(database_url: str, name: str, *, template: str | None = None) -> None:
    """Create the database ``name`` on the server of ``database_url`` (a copy of ``template``)."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with _admin_connection(database_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')


def drop_database(database_url: str, name: str) -> None:
    with _admin_connection(database_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(database_url: str, query: str, params: tuple | dict | None = None) -> list[dict]:
    """Rows of a query on the database of ``database_url``, as dicts."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as db:
        return db.execute(query, params).fetchall()


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every Redis key that starts with ``prefix`` (a cluster's channel layer and cache)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
