"""A TCP proxy for wire-level faults: forwards to a server and can cut any write that contains a marker.

async with TcpProxy("127.0.0.1", 6379) as proxy:
    client = Redis(host="127.0.0.1", port=proxy.port)
    proxy.cut_on = b"XADD"   # the next write carrying XADD never reaches Redis; the connection drops
    proxy.cut_times = 5      # ... and the next 4 tries of it too (None: every one)
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.cut_on: bytes | None = None
        self.cut_times: int | None = None  # stop cutting after this many cuts
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await src.read(65536):
                    if upstream and self.cut_on is not None and self.cut_on in data:
                        self.cuts += 1
                        if self.cut_times is not None and self.cuts >= self.cut_times:
                            self.cut_on = None
                        break  # drop this write and the connection: the command never ran
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()
                up_writer.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.gather(writer.wait_closed(), up_writer.wait_closed())

        tasks = [
            asyncio.create_task(pump(reader, up_writer, True)),
            asyncio.create_task(pump(up_reader, writer, False)),
        ]
        self._tasks.update(tasks)
        for t in tasks:
            t.add_done_callback(self._tasks.discard)
