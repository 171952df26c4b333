"""Tools for developing Switchboard (not part of the running app): what tests and bench share."""
