"""Pytest plugin (``-p tests.startup_plugin`` in pyproject): the start-up step of every entry
point (``project/startup_files.py``), run around pytest-django's loading of the settings."""

from __future__ import annotations

import pytest

from project import startup_files


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A wrapper runs before every plain implementation, pytest-django's (tryfirst) included.
    startup_files.prepare_data_dir()
    result = yield
    from django.conf import settings

    if settings.configured:
        startup_files.prepare_settings_files(settings)
    return result
