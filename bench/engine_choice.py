"""Why Redis: the same registry write and read against Redis and etcd, one at a time and
16 in flight, on this machine (docs/deploy.md#the-engine-redis-not-etcd).

Not part of ``make bench``: it needs etcd (Debian ``etcd-server``) and the ``aetcd``
client, which plugin-di does not depend on. Run it by hand::

    apt-get install -y etcd-server redis-server && pip install aetcd
    python -m bench.engine_choice

- register: a guarded write (only while the plugin's key exists) that every host hears
  of. Redis: plugin-di's own ``MUTATE`` script (hash write, sequence number and change
  stream entry in one step). etcd: a transaction comparing the plugin key's version and
  putting the registration under the plugin's lease (watchers see it).
- read: one registration by key (HGET; etcd range get).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

N = 2000


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _rates(ops: dict[str, Callable[[int], Awaitable[Any]]]) -> dict[str, float]:
    out = {}
    for name, op in ops.items():
        for in_flight in (1, 16):
            gate = asyncio.Semaphore(in_flight)

            async def one(i: int, op: Any = op, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await op(i)

            start = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(N)))
            out[f"{name}_x{in_flight}"] = round(N / (time.perf_counter() - start))
    return out


@contextlib.contextmanager
def _server(command: list[str]) -> Iterator[None]:
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        yield
    finally:
        server.terminate()
        server.wait()


async def redis_rates(port: int) -> dict[str, float]:
    from plugin_di.host.shared.config import StoreConfig
    from plugin_di.host.shared.engine import RedisEngine

    engine = RedisEngine(StoreConfig(url=f"redis://127.0.0.1:{port}/0"))
    await engine.connect()
    await engine.mutate([json.dumps({"o": [["p", "plugins", "kv-1", "{}", "kv-1", 0]]})])
    value = json.dumps(["reg", "kv-1", "kv", "1.0.0", "/kv/", {}, 0.0])

    async def register(i: int) -> None:
        batch = {"g": ["plugins", "kv-1"], "o": [["p", "regs", f"reg-{i}", value, "kv-1", 0]]}
        (result,) = await engine.mutate([json.dumps(batch)])
        assert isinstance(result, int)
        assert result > 0

    async def read(i: int) -> None:
        await engine._client.hget(engine.prefix + ":m:regs", f"reg-{i}")

    rates = await _rates({"register": register, "read": read})
    await engine.close()
    return rates


async def etcd_rates(port: int) -> dict[str, float]:
    import aetcd  # type: ignore[import-not-found]

    client = aetcd.Client(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            await client.status()
            break
        except Exception:
            await asyncio.sleep(0.1)
    lease = await client.lease(30)
    await client.put(b"/plugins/kv-1", b"{}", lease=lease)
    value = json.dumps(["reg", "kv-1", "kv", "1.0.0", "/kv/", {}, 0.0]).encode()
    compare = [client.transactions.version(b"/plugins/kv-1") > 0]

    async def register(i: int) -> None:
        put = client.transactions.put(f"/regs/reg-{i}".encode(), value, lease=lease)
        ok, _ = await client.transaction(compare=compare, success=[put], failure=[])
        assert ok

    async def read(i: int) -> None:
        await client.get(f"/regs/reg-{i}".encode())

    rates = await _rates({"register": register, "read": read})
    await client.close()
    return rates


def _redis_command(port: int, tmp: str, fsync: str) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
            "--appendonly", "yes", "--appendfsync", fsync, "--save", ""]  # fmt: skip


def _etcd_command(port: int, tmp: str) -> list[str]:
    peer = _port()
    return ["etcd", "--data-dir", tmp, "--listen-client-urls", f"http://127.0.0.1:{port}",
            "--advertise-client-urls", f"http://127.0.0.1:{port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}"]  # fmt: skip


def main() -> int:
    missing = [b for b in ("redis-server", "etcd") if shutil.which(b) is None]
    if missing:
        print(f"needs {', '.join(missing)} (see this module's docstring)", file=sys.stderr)
        return 2
    for label, fsync in (("every second", "everysec"), ("every write ", "always")):
        port = _port()
        with tempfile.TemporaryDirectory() as tmp, _server(_redis_command(port, tmp, fsync)):
            print(f"redis, fsync {label}", asyncio.run(redis_rates(port)))
    port = _port()
    with tempfile.TemporaryDirectory() as tmp, _server(_etcd_command(port, tmp)):
        print("etcd (fsync every write)  ", asyncio.run(etcd_rates(port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
