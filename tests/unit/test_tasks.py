"""Background tasks: a failure is logged (not lost until garbage collection), close cancels."""

import asyncio
import logging

import pytest

from cti.tasks import Background


async def test_a_failure_is_logged_and_close_cancels_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bg = Background(logging.getLogger("test.background"))
    started = asyncio.Event()
    cancelled = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def waits() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with caplog.at_level(logging.ERROR, "test.background"):
        bg.spawn(fails())
        bg.spawn(waits())
        await started.wait()
        await asyncio.sleep(0)
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    await bg.close()
    assert cancelled == [True]
