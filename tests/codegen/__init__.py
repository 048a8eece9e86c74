"""Tests of plugin-di's code generation: `plugin-di proto gen`, the shipped protos, examples."""
