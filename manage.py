#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    from project.startup_files import prepare

    prepare()  # the data directory, secret key and SQLite file, before any command uses them
    execute_from_command_line(sys.argv)
