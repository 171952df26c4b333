"""Migrations keep what is already stored: each is run from the migration before it, on a
database with rows made through the historical models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps


class Migrator:
    """Moves the test database to a migration and returns the models as they were there."""

    def migrate(self, app: str, name: str) -> StateApps:
        executor = MigrationExecutor(connection)
        executor.migrate([(app, name)])
        executor.loader.build_graph()
        return executor.loader.project_state([(app, name)]).apps

    def migrate_to_latest(self) -> None:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def migrator(transactional_db) -> Iterator[Migrator]:
    migrator = Migrator()
    yield migrator
    migrator.migrate_to_latest()


def test_image_hosts_migration_keeps_the_site_settings(migrator):
    old = migrator.migrate("chat", "0004_teams_sharing_heartbeat")
    old.get_model("chat", "SiteSettings").objects.create(
        pk=1,
        allow_signup=True,
        allowed_email_domains="example.com",
        default_tokens_per_day=1000,
        staff_exempt=True,
    )
    new = migrator.migrate("chat", "0005_image_hosts")
    row = new.get_model("chat", "SiteSettings").objects.get(pk=1)
    assert (row.allow_signup, row.allowed_email_domains, row.default_tokens_per_day) == (
        True,
        "example.com",
        1000,
    )
    assert row.staff_exempt is True
    assert row.image_hosts == ""  # no host allowed: remote images wait for a click
