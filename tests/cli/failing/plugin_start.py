"""A plugin module that raises as it starts, before it serves."""


def read_config() -> None:
    raise ValueError("plugin config lacks the key 'port'")


read_config()
