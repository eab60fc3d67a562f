"""MCP tool calls under load (armorm_ui/mcp_gate.py): a few at a time into the page's queue, the rest in line at the
gate holding no thread or refused like the page's queue; the server's threads come back to where they were."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from armorm_ui.mcp_gate import Gate, GateFull

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


async def until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_the_gate_lets_a_few_in_keeps_a_line_and_refuses_beyond_it():
    async def run():
        gate, release, inside = Gate(at_once=2, waiting=3), asyncio.Event(), []

        async def caller(i):
            async with gate.entered():
                inside.append(i)
                await release.wait()
            return i

        tasks = [asyncio.create_task(caller(i)) for i in range(5)]
        await until(lambda: gate.inside == 2 and gate.in_line() == 3)
        with pytest.raises(GateFull, match="Queue is full! Please try again"):
            async with gate.entered():
                pass
        tasks[4].cancel()  # a caller that goes away while in line leaves it
        await until(lambda: gate.in_line() == 2)
        release.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert done[:4] == [0, 1, 2, 3] and isinstance(done[4], asyncio.CancelledError)
        assert inside == [0, 1, 2, 3] and gate.most_inside == 2 and gate.inside == 0  # in order, two at a time

    asyncio.run(run())


async def mcp_score(url: str, i: int) -> str:
    """One MCP client calling the score tool: "ok", the refusal's text, or the exception that ended it."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    try:
        async with streamable_http_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                answer = await session.call_tool(
                    "score", {"conversation": f"Question {i}?", "candidates": ["Yes.", "No."]}
                )
                return answer.content[0].text if answer.isError else "ok"
    except Exception as e:  # noqa: BLE001 - reported, and fails the test
        return f"{type(e).__name__}: {e}"


def test_mcp_calls_under_load_share_the_queue_and_give_their_threads_back(demo_dir, monkeypatch):
    """24 MCP clients at once beside another visitor's /score, on an app whose queue holds 8: each call ends with a
    result or the queue's "Queue is full" (nothing hangs or times out), the visitor is answered, and the server's
    threads come back near where they were (Gradio's loopback client grew by about two threads per call in flight,
    never given back: 20 to 133 for 60 calls)."""
    import load_test
    import psutil
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_MCP_SERVER", "true")
    proc, url = load_test.start_app(queue_size=8, model=str(demo_dir))
    try:
        server = psutil.Process(proc.pid)
        assert asyncio.run(mcp_score(url, -1)) == "ok"  # the loopback client exists: its threads are the baseline
        visitor = Client(url, verbose=False)
        visitor.predict("hi", ["a", "b"], api_name="/score")
        before = server.num_threads()

        async def load():
            calls = [asyncio.create_task(mcp_score(url, i)) for i in range(24)]
            other = asyncio.to_thread(visitor.predict, "Is the sky blue?", ["Yes.", "No."], api_name="/score")
            return await asyncio.gather(*calls), await other

        answers, other = asyncio.run(load())
        kinds = Counter("ok" if a == "ok" else "full" if a.startswith("Queue is full") else a for a in answers)
        assert set(kinds) <= {"ok", "full"} and kinds["ok"] >= 2, kinds
        assert len(other["scores"]) == 2
        deadline = time.monotonic() + 60
        while server.num_threads() > before + 8:  # idle worker threads leave at the next request after 10 s idle
            assert time.monotonic() < deadline, f"{server.num_threads()} threads, {before} before the load"
            visitor.predict("hi", ["a", "b"], api_name="/score")
            time.sleep(1)
        print(f"threads: {before} before, {server.num_threads()} after; {dict(kinds)}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
