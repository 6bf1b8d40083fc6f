import asyncio
import random

from watchers.runner import backoff_delay, run_periodic


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 1.0, 30.0, rng) for n in range(1, 12)]
    assert 1.0 <= delays[0] <= 2.0
    assert all(d <= 30.0 for d in delays)
    assert max(delays) >= 15.0
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jitter: capped delays still differ


async def test_runner_survives_failures_and_stops_promptly() -> None:
    stop = asyncio.Event()
    calls = []

    async def step() -> None:
        calls.append(1)
        if len(calls) in (2, 3):
            raise RuntimeError("boom")
        if len(calls) >= 5:
            stop.set()

    await asyncio.wait_for(run_periodic("t", step, interval_s=0.01, max_backoff_s=0.05, stop=stop), 5)
    assert len(calls) == 5

    stop2 = asyncio.Event()
    task = asyncio.create_task(run_periodic("t", step, interval_s=3600, max_backoff_s=3600, stop=stop2))
    await asyncio.sleep(0.05)
    stop2.set()
    await asyncio.wait_for(task, 1)


async def test_stop_abandons_a_slow_poll() -> None:
    stop = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(run_periodic("slow", slow, interval_s=1, max_backoff_s=1, stop=stop))
    await started.wait()
    stop.set()
    await asyncio.wait_for(task, 1)  # not 30 s
