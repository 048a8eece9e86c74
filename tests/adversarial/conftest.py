"""Surfaces under attack: the host and a served KV plugin, each on every server kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .support.servers import SERVER_KINDS, Surface, serve_host, serve_plugin


@pytest.fixture(params=[f"{role}/{kind}" for role in ("host", "plugin") for kind in SERVER_KINDS])
async def surface(request: pytest.FixtureRequest) -> AsyncIterator[Surface]:
    """Each surface in turn, with rate limits off so that every input reaches the code."""
    role, kind = str(request.param).split("/")
    if role == "host":
        async with serve_host(kind, rate_limit=None) as (_, found):
            yield found
    else:
        async with serve_plugin(kind) as (_, found):
            yield found
