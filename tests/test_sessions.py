"""Gradio's per-session state as the app keeps it (armorm_ui/sessions.py): a new session costs no page configuration,
sessions that keep nothing never push out one that keeps something, and the queue's finished sessions are forgotten.
The launched app's annotator is in tests/test_ui_annotate.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.blocks import BlocksConfig
from gradio.state_holder import SessionState, StateHolder

from armorm_ui.sessions import Session, Sessions, bound_bookkeeping, forget_finished, release_freed_memory


@pytest.fixture(scope="module")
def page():
    with gr.Blocks() as demo:
        state = gr.State({})
        box = gr.Textbox(label="text")
        choice = gr.Radio(choices=[], label="choice")
        for k in range(40):  # a page of some size: Gradio's SessionState configures every one of these
            gr.Markdown(f"part {k}")
        box.submit(lambda s, t: (s, gr.update(choices=["A", "B"])), [state, box], [state, choice])
    demo.state_session_capacity = 3
    return SimpleNamespace(demo=demo, state=state, box=box, choice=choice)


def counting(monkeypatch) -> list[int]:
    calls = []
    made = BlocksConfig.config_for_block

    def counted(*args, **kwargs):
        calls.append(1)
        return made(*args, **kwargs)

    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counted))
    return calls


def test_a_new_session_configures_no_component(page, monkeypatch):
    """The memory and event-loop time of a new session (a script's /score call): Gradio's configures every
    component at once (about 460 KB and 50-90 ms for this app's 300); ours none until one is changed."""
    calls = counting(monkeypatch)
    SessionState(page.demo)
    assert len(calls) >= 40
    calls.clear()
    fresh = Session(page.demo)
    assert calls == [] and fresh.config_values == {}
    assert set(vars(SessionState(page.demo))) <= set(vars(fresh))  # every attribute Gradio's sets (an upgrade that
    # adds one fails here)


def test_a_session_gives_the_same_configuration_as_gradios(page):
    """What a session hands out (its components, for a deep link) is Gradio's, fresh and after the same changes."""
    ours, gradios = Session(page.demo), SessionState(page.demo)
    assert list(ours.components) == list(gradios.components)
    for session in (ours, gradios):
        session[page.choice._id] = gr.Radio(choices=["A", "B"], label="choice", render=False)
        session._update_value_in_config(page.box._id, "typed")
        session[page.state._id] = {"file": 1}
    assert list(ours.components) == list(gradios.components)
    assert ours[page.state._id] == {"file": 1} and ours.keeps_something


def test_sessions_that_keep_nothing_never_push_out_one_that_keeps_something(page):
    """Capacity 3: an annotator's session (it read its gr.State) outlives 200 sessions that keep nothing, of which
    only the most recent `passing` are held; sessions that keep something push it out as Gradio's LRU does. With
    Gradio's own StateHolder the 200 push it out."""
    for holder, outlives in ((Sessions(passing=2), True), (StateHolder(), False)):
        holder.set_blocks(page.demo)
        holder["ana"][page.state._id]  # reading a gr.State makes it the session's
        for i in range(200):
            holder[f"api-{i}"]  # a /score call: a session that reads and changes nothing
            assert len(holder.session_data) <= 3
        assert ("ana" in holder) is outlives
        if outlives:
            assert sum(key.startswith("api-") for key in holder.session_data) == 2
    holder = Sessions(passing=2)
    holder.set_blocks(page.demo)
    holder["ana"][page.state._id]
    holder["changed"][page.choice._id] = gr.Radio(choices=["A"], render=False)  # an update changed a component
    holder["api"]
    holder["ben"][page.state._id]
    holder["cid"][page.state._id]
    assert set(holder.session_data) == {"changed", "ben", "cid"}  # "api" first, then the least recently used


def test_the_session_being_served_is_never_the_one_evicted(page):
    holder = Sessions(passing=1)
    holder.set_blocks(page.demo)
    holder.capacity = 1
    holder["ana"][page.state._id]
    assert holder["api"] is holder.session_data["api"]  # a new session that keeps nothing, over the capacity
    holder["api"][page.state._id]  # it reads a gr.State: it keeps something now
    assert holder["ben"] is holder.session_data["ben"] and list(holder.session_data) == ["ben"]


def test_the_queue_forgets_sessions_with_nothing_pending():
    """Gradio's queue keeps an empty set for every session that ever sent an event: about 300 bytes a call, for ever,
    and scanned by every /gradio_api/call/NAME/EVENT read; and its message queue, about 3.3 KB, for the last 2,000
    sessions. A session with a message not yet read, or a stream waiting for one, keeps its message queue."""

    async def check():
        boxes = {name: asyncio.Queue() for name in ("done", "busy", "also-done", "unread", "read-by-a-stream")}
        boxes["unread"].put_nowait("completed")
        reader = asyncio.ensure_future(boxes["read-by-a-stream"].get())
        await asyncio.sleep(0)  # the reader now waits on its queue
        pending = {name: set() for name in boxes} | {"busy": {"event-1"}}
        queue = SimpleNamespace(pending_messages_per_session=dict(boxes), pending_event_ids_session=pending)
        assert forget_finished(queue) == 4
        assert queue.pending_event_ids_session == {"busy": {"event-1"}}
        assert set(queue.pending_messages_per_session) == {"busy", "unread", "read-by-a-stream"}
        reader.cancel()

    asyncio.run(check())


def test_many_calls_leave_the_queues_bookkeeping_bounded(monkeypatch):
    """N calls from N sessions (a script's /score calls) through Gradio's own Queue.push, each delivered: once tidied,
    no session's bookkeeping is left, and the event records stop at ANALYTICS_EVENTS; with Gradio's own queue all N
    message queues and N records stay."""
    from gradio.data_classes import PredictBodyInternal
    from gradio.queueing import Queue
    from starlette.requests import Request

    monkeypatch.delenv("GRADIO_ANALYTICS_MAX_EVENTS", raising=False)
    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(lambda t: t, box, box, api_name="echo")
    demo.queue()
    fn = next(iter(demo.fns.values()))

    async def calls(n: int, tidy: bool) -> Queue:
        queue = Queue(live_updates=False, concurrency_count=1, update_intervals=1, max_size=None, blocks=demo,
                      default_concurrency_limit=1)  # fmt: skip
        queue.broadcast_estimations = lambda *args: None
        if tidy:
            bound_bookkeeping(queue, events=50)
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""})
        for i in range(n):
            body = PredictBodyInternal(session_hash=f"api-{i}", fn_index=fn._id, data=["x"], request=request)
            await queue.push(body=body, request=request, username=None)
            queue.pending_event_ids_session[f"api-{i}"].clear()  # its completion delivered (gradio/routes.py)
            queue.event_queue_per_concurrency_id[fn.concurrency_id].queue.clear()
        if tidy:
            forget_finished(queue)
        return queue

    ours, gradios = asyncio.run(calls(300, tidy=True)), asyncio.run(calls(300, tidy=False))
    assert len(ours.pending_messages_per_session) == len(ours.pending_event_ids_session) == 0
    assert len(ours.event_analytics) == 50
    assert len(gradios.pending_messages_per_session) == len(gradios.event_analytics) == 300


def test_freed_memory_goes_back_to_the_system_where_the_c_library_can():
    import platform

    assert release_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
