"""The greeter plugin in JavaScript (plugin.js), launched by a Python app (app.py)."""
