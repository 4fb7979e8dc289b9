"""Plugins for every test path (tests/, the package's doctests, devtools/)."""

pytest_plugins = ["tests.clock"]
