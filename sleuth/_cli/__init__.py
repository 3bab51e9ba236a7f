"""The `sleuth` command, one module per verb group; `main.py` assembles them into the app."""
