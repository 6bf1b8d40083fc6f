"""Running the bot as an operator would: a subprocess with a config file, and a redis-server of its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from bot.embedded_redis import find_redis_server

    return find_redis_server()


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_redis(port: int, *args: str) -> subprocess.Popen[bytes]:
    """A redis-server of the test's own (tests that kill, restart or flush Redis must not touch the shared one)."""
    # a folder of its own: a replica writes the RDB it syncs from its master there
    work = tempfile.mkdtemp(prefix="bw-redis-")
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--save", "", "--appendonly", "no", "--dir", work, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def start_sentinel(conf: Path, port: int) -> subprocess.Popen[bytes]:
    """A real redis-sentinel (redis-server --sentinel) reading ``conf``, listening on ``port``."""
    proc = subprocess.Popen(
        [redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    args = [str(a) for a in proc.args] if isinstance(proc.args, list) else []
    if "--dir" in args:
        shutil.rmtree(args[args.index("--dir") + 1], ignore_errors=True)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML file from {section: {key: value}}; nested dicts become [section.key] tables."""
    lines: list[str] = []
    for name, body in sections.items():
        lines.append(f"[{name}]")
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items() if k not in nested]
        for k, table in nested.items():
            lines.append(f"[{name}.{k}]")
            lines += [f"{kk} = {toml_value(vv)}" for kk, vv in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bot_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "GLASSNODE_API_KEY", "CRYPTOQUANT_API_KEY")
    }
    env.update(extra)
    return env


async def spawn_bot(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=env or bot_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(stream: asyncio.StreamReader, needle: bytes, timeout_s: float) -> bytes:
    """Everything read from ``stream`` until ``needle`` appeared (AssertionError with the text otherwise)."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while needle not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen; got: {out.decode(errors='replace')[-3000:]}")
        try:
            chunk = await asyncio.wait_for(stream.read(4096), left)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"stream ended before {needle!r}; got: {out.decode(errors='replace')[-3000:]}")
        out += chunk
    return out
