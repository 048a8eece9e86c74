"""The greeter of docs/writing-a-plugin.md in Python (examples/node_plugin: in JavaScript)."""
