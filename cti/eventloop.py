"""The event loop our processes run on: uvloop when it is installed, asyncio's own otherwise.

uvloop (libuv under the asyncio API) does each socket wake-up, read and write in C where asyncio's
selector loop does them in Python: the FastAGI server answers ~50 calls stepping at once, each
command one recv and one send, and on two shared cores that per-command overhead is what piles up
into the lockstep's tail (bench.agi compares both loops in one run). CTI_EVENT_LOOP=asyncio
forces asyncio's loop (a fault to rule out, or the benchmark's baseline).
"""

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
LOOPS = ("uvloop", "asyncio")


def loop_name(wanted: str | None = None) -> str:
    """The loop a process will run: `wanted`, else CTI_EVENT_LOOP, else uvloop if installed."""
    name = (wanted or os.environ.get("CTI_EVENT_LOOP", "") or "uvloop").strip().lower()
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r}: one of {', '.join(LOOPS)}")
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
    return name


def loop_factory(wanted: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new loop of the kind `loop_name` picks."""
    if loop_name(wanted) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], wanted: str | None = None) -> T:
    """asyncio.run(main) on the loop `loop_name` picks."""
    with asyncio.Runner(loop_factory=loop_factory(wanted)) as runner:
        return runner.run(main)
