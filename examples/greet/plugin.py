"""The greeter plugin, declared in one line: ``plugin-di serve examples.greet.plugin:plugin``."""

from __future__ import annotations

from examples.greet.gen.greet.v1.greet_plugin import greeter_plugin
from examples.greet.greeter import Greeter

plugin = greeter_plugin(Greeter())
