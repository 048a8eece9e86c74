"""plugin_di.eventloop: uvloop by default for the project's own entry points."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from plugin_di import eventloop
from plugin_di.settings import Settings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_auto_is_uvloop_when_installed_and_asyncio_when_asked() -> None:
    assert eventloop.run(_loop_type()) is uvloop.Loop
    assert eventloop.run(_loop_type(), "uvloop") is uvloop.Loop
    assert not issubclass(eventloop.run(_loop_type(), "asyncio"), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # "import uvloop" now fails
    assert eventloop.loop_factory("auto") is asyncio.new_event_loop
    with pytest.raises(RuntimeError, match="PLUGIN_DI_EVENT_LOOP=uvloop"):
        eventloop.loop_factory("uvloop")


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().event_loop == "auto"
    monkeypatch.setenv("PLUGIN_DI_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
