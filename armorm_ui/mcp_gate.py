"""MCP tool calls in line for the page's queue, a few at a time, instead of a thread pile in front of it.

How Gradio 6.31 runs an MCP tool (gradio/mcp.py, GradioMCPServer.call_tool): a tool whose event is queued, as all of
this app's are, does not bypass the queue: the server sends it to itself over HTTP through one shared gradio_client
Client (`_get_or_create_client`), which submits it to /gradio_api/queue/join like any API call, so it waits in the
same queue, in the same concurrency group ("model") and under the same queue size as the page. But every call in
flight holds threads while it waits there: one of the Client's executor (up to 40), one of its helper executor (up
to 80), and one of anyio's default pool waiting on `job.result` (its 40 tokens, shared with every synchronous
pre- and post-processing step of the page). 60 concurrent calls beside a batch grew the server from 20 to 133
threads (the Client's pools never shrink), the page's own steps waited for the pool, and calls timed out.

`install` puts a gate in front of the MCP server's tools/call handler: AT_ONCE calls go on to the queue at a time (one
running in the model slot, one waiting behind it), the others wait at the gate in order without holding a thread,
and beyond the queue size (ARMORM_QUEUE_SIZE, as on the page) a call is refused at once with the queue's own
"Queue is full! Please try again." and a line in the server log. Tool listing and the other MCP requests are not
gated. The loopback Client's two pools are sized to the gate (AT_ONCE and twice that threads), so the threads MCP
adds stay a small fixed number whatever the load.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

AT_ONCE = 2
"""MCP tool calls past the gate at once: one in the model slot and one in the queue behind it keep the slot busy."""


class GateFull(Exception):
    """Too many calls waiting at the gate."""


class Gate:
    """At most `at_once` callers inside at a time; up to `waiting` more wait in line, first come first served, holding
    no thread; beyond that a caller is refused (GateFull). A waiter that is cancelled leaves the line."""

    def __init__(self, at_once: int, waiting: int):
        self.at_once, self.waiting = at_once, waiting
        self._slots = asyncio.Semaphore(at_once)
        self._in_line = 0
        self.inside = 0
        self.most_inside = 0  # the most callers ever inside at once

    @asynccontextmanager
    async def entered(self):
        if self._slots.locked() and self._in_line >= self.waiting:
            raise GateFull(f"Queue is full! Please try again. ({self._in_line} tool calls are waiting already.)")
        self._in_line += 1
        try:
            await self._slots.acquire()
        finally:
            self._in_line -= 1
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            yield
        finally:
            self.inside -= 1
            self._slots.release()

    def in_line(self) -> int:
        return self._in_line


def bound_loopback(mcp, at_once: int) -> None:
    """Size the pools of the Client the MCP server calls its own queue with (made on its first tool call): each call
    in flight takes one thread of `executor` and two of `helper_executor` (gradio_client/utils.py,
    get_pred_from_sse_v1plus), 40 and 80 by default, threads a ThreadPoolExecutor never gives back."""
    made = mcp._get_or_create_client
    lock = threading.Lock()

    def bounded():
        with lock:
            client = made()
            if not getattr(client, "armorm_bounded", False):
                for pool, size, name in (("executor", at_once, "mcp-call"), ("helper_executor", 2 * at_once, "mcp-io")):
                    getattr(client, pool).shutdown(wait=False)  # unused yet: no thread to wait for
                    setattr(client, pool, ThreadPoolExecutor(max_workers=size, thread_name_prefix=name))
                client.armorm_bounded = True
            return client

    mcp._get_or_create_client = bounded


def install(blocks, at_once: int = AT_ONCE, waiting: int = 32) -> Gate | None:
    """Gate the tools/call requests of the Blocks' MCP server and size its loopback Client's pools to the gate (None
    when it serves no MCP)."""
    server = getattr(getattr(blocks, "mcp_server_obj", None), "mcp_server", None)
    if server is None:
        return None
    from mcp import types

    bound_loopback(blocks.mcp_server_obj, at_once)
    handler = server.request_handlers[types.CallToolRequest]
    gate = Gate(at_once, waiting)

    async def gated(request):
        try:
            async with gate.entered():
                return await handler(request)
        except GateFull as e:
            print(f"refused an MCP tool call: {e}", file=sys.stderr, flush=True)
            text = types.TextContent(type="text", text=str(e))
            return types.ServerResult(types.CallToolResult(content=[text], isError=True))

    server.request_handlers[types.CallToolRequest] = gated
    server.armorm_gate = gate  # for the tests and the benchmark's own reading
    return gate
