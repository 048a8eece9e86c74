"""The fx-style lifecycle engine: App, Lifecycle, graph, events, plugin providers."""
