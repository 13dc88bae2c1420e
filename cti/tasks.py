"""Background work a service starts from a synchronous listener: kept until done, a failure
logged with the service's logger, all of it cancelled and awaited at close."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any


class Background:
    """A set of background tasks."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("background task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel what is still running and wait for it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task has been asked to stop but is still running: something
    it awaited swallowed the cancel (on Python 3.11 a library's `asyncio.wait_for` does when its
    wait ends in the iteration the cancel lands in; a broad `except`). A loop that calls this
    every round ends all the same, and whoever awaits it after cancelling is not left waiting."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
