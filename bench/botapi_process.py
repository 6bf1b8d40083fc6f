"""The Bot API double in its own process, enforcing Telegram's flood model, with a small control API.

    .venv/bin/python -m bench.botapi_process

Serves the Bot API on a free port (printed, with the control port, as one line "api control"),
with ``enforce_limits()``: 30/s overall, 1/s per private chat, 20/min per group, a 429 holding its scope
(the chat, or the whole bot) for retry_after. Control API (JSON):

- ``POST /push {"chat_id", "text", "user_id", "chat_type"}``: a user's message, answered by polling;
- ``GET /stats``: every accepted send (chat, monotonic time, text) and the 429s served, by scope.

Its own process and event loop, so the sender's timing is not the server's.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from tests.fakes.telegram import BotApiDouble


async def main() -> None:
    double = BotApiDouble()
    await double.start()
    double.enforce_limits()

    async def push(request: web.Request) -> web.Response:
        body = await request.json()
        double.push_message(
            int(body["chat_id"]),
            str(body["text"]),
            user_id=int(body["user_id"]),
            chat_type=str(body.get("chat_type", "private")),
        )
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sent": [[s.chat_id, s.at, s.plain[:120]] for s in double.sent],
                "too_many_requests": double.too_many_requests,
                "flood_refusals": double.flood_refusals,
                "errors": [list(e) for e in double.errors[-20:]],
            }
        )

    control = web.Application()
    control.router.add_post("/push", push)
    control.router.add_get("/stats", stats)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    print(f"{double.port} {control_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    await double.close()


if __name__ == "__main__":
    asyncio.run(main())
