"""Gradio's per-session state as the app keeps it (armorm_ui/sessions.py): a new session costs no page configuration,
sessions that keep nothing never push out one that keeps something, and the queue's finished sessions are forgotten.
The launched app's annotator is in tests/test_ui_annotate.py."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.blocks import BlocksConfig
from gradio.state_holder import SessionState, StateHolder

from armorm_ui.sessions import Session, Sessions, forget_finished


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
    and scanned by every /gradio_api/call/NAME/EVENT read."""
    queue = SimpleNamespace(pending_event_ids_session={"done": set(), "busy": {"event-1"}, "also-done": set()})
    assert forget_finished(queue) == 2
    assert queue.pending_event_ids_session == {"busy": {"event-1"}}
