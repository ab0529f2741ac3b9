"""Server-Sent Events for anything with progress in Redis (bulk jobs, training jobs).

One loop: send `progress` whenever the rendered state changes, a comment now and then to keep
proxies from closing an idle stream, and one `end` event when the state is terminal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse

EVENT_INTERVAL_S = 0.5  # progress events at most this often
KEEPALIVE_S = 15.0

# Returns (rendered JSON body, finished) or None when the thing is gone (expired).
ReadState = Callable[[], Awaitable[tuple[str, bool] | None]]
# Sleeps up to the given seconds, less when the thing ends (store.events.wait_*_ended).
WaitForEnd = Callable[[float], Awaitable[object]]


async def progress_events(read: ReadState, wait_for_end: WaitForEnd) -> AsyncIterator[str]:
    last, idle = None, 0.0
    while True:
        state = await read()
        if state is None:  # expired while we watched
            return
        body, finished = state
        if finished:
            yield f"event: end\ndata: {body}\n\n"
            return
        if body != last:
            yield f"event: progress\ndata: {body}\n\n"
            last, idle = body, 0.0
        elif idle >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            idle = 0.0
        await wait_for_end(EVENT_INTERVAL_S)  # the next tick, or sooner when it ends
        idle += EVENT_INTERVAL_S


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
