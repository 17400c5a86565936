"""Running component tests of HoloViews drawings with an event loop (imported as
``drawing_loop``: pytest puts ``tests/`` on ``sys.path``).

A HoloViews plot rendered into a Bokeh document answers each redraw with a task on the
running event loop (its stream reads back what was drawn, as it does for a browser's
edit). A test that renders a drawing and then changes it needs that loop, and
:func:`settle` lets those read-backs run before the test looks again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine

#: Rounds of read-backs :func:`settle` waits for at most (a read-back that caused another
#: read-back, forever, is a ping-pong between a stream and its model: a failure).
MAX_ROUNDS = 10


def with_event_loop(test: Callable[..., Coroutine]) -> Callable[..., None]:
    """Run the ``async def`` test in a fresh event loop; its pending tasks finish after it."""

    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        async def body() -> None:
            await test(*args, **kwargs)
            await settle()

        asyncio.run(body())

    return run


async def settle() -> None:
    """Wait until every other task of the loop (the plots' read-backs) has finished."""
    current = asyncio.current_task()
    for _ in range(MAX_ROUNDS):
        pending = [task for task in asyncio.all_tasks() if task is not current]
        if not pending:
            return
        await asyncio.gather(*pending)
    raise AssertionError(f"read-backs still pending after {MAX_ROUNDS} rounds: a ping-pong")
