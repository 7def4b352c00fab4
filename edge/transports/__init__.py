"""Transport implementations behind ``edge/transport.py`` (the entry point the CLI uses)."""
