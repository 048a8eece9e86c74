"""The main example: one application mixing in-memory and process plugins, fx-style."""
