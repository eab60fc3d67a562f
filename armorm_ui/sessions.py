"""Gradio's per-session state, kept for the sessions that keep something, cheap for those that keep nothing.

Gradio keeps a SessionState for every session that makes a request (gradio/state_holder.py), the most recently used
up to launch's state_session_capacity (ARMORM_SESSIONS), and evicts the oldest beyond that. Two things made that a
problem on a public Space, both measured on this app (about 300 components) with Gradio 6.31:

- every new session computed at once the page configuration of every component (SessionState.config_values): about
  460 KB and 50-90 ms of the event loop per session, also for a script's /score call, which gets a new session each
  time on /gradio_api/call/score and never reads it. The server grew by about 0.5 MB a call until the capacity.
- a call that keeps nothing counted like a browser tab: 1,104 cheap calls pushed an annotator's session (the file
  open, the item, the choices of its buttons) out, and the next Save failed inside Gradio ("Value: 'A' is not in
  the list of choices: []").

`Session` computes a component's configuration only when the session changes it, and otherwise from the shared
default when asked (for a deep link); what it keeps is what Gradio's keeps. `Sessions` tells the sessions that keep
something (they have read or written a gr.State, or an update changed one of their components) from those that
keep nothing (API and MCP calls to /score, /attribute, /attribute_tokens, /probe): of the latter it keeps only the
PASSING most recent, evicted first, so they never push out a session that keeps something. `install` puts it in
place of Gradio's before the server takes its first request (app.py, in the app's lifespan).

Gradio's queue also keeps, for every session that ever sent an event, a set of its pending events
(Queue.pending_event_ids_session): emptied when the last completion is delivered, removed only when a session's
events are cancelled, and scanned whole by every /gradio_api/call/NAME/EVENT read; beside it the session's message
queue (Queue.pending_messages_per_session, an asyncio.Queue of about 3.3 KB once used), dropped only by an LRU of
2,000 sessions; and a record of every event for the monitoring dashboard (Queue.event_analytics, about 370 bytes an
event, up to 10,000 events). Every /score call from a script is a new session, so these grew with the number of
requests (about 10 MB over 10,000) before their caps. `forget_finished` removes a finished session's set and
message queue; `bound_bookkeeping` keeps the last ANALYTICS_EVENTS records (the app offers no monitoring dashboard);
`release_freed_memory` hands the C heap's free pages back to the system (glibc's malloc_trim), which it otherwise
keeps after a load. The lifespan runs them every TIDY_EVERY_S seconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import datetime
import os
from collections import OrderedDict
from copy import copy

from gradio.state_holder import SessionState, StateHolder

PASSING = 32
"""Sessions that keep nothing, kept at once (the most recent): enough for the calls in the queue to run in theirs."""
TIDY_EVERY_S = 60.0
ANALYTICS_EVENTS = 200
"""Records of events Gradio's queue keeps for its monitoring dashboard, which this app does not offer."""


class Session(SessionState):
    """Gradio's SessionState without the eager configuration of every component (see the module docstring)."""

    def __init__(self, blocks):  # SessionState.__init__ without its `config_values` of every block
        self.blocks_config = copy(blocks.default_config)
        self._root = blocks  # its blocks are those whose configuration `components` gives
        self.config_values = {}  # filled as the session changes components; Gradio fills the missing ones itself
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600
        self.changed = False  # an update replaced one of its components (choices, visibility...)

    def __setitem__(self, key, value):
        if value is not self.blocks_config.blocks.get(key):
            self.changed = True
        super().__setitem__(key, value)

    @property
    def keeps_something(self) -> bool:
        """Whether it holds anything a later request reads: a gr.State (read once, it is this session's), or a
        component changed by an update."""
        return self.changed or bool(self.state_data)

    @property
    def components(self):
        """Every component's configuration in this session, as Gradio's gives it (for a deep link)."""
        for key, block in self.blocks_config.blocks.items():
            if key in self.config_values:
                config = self.config_values[key]
            elif key in self._root.blocks:
                config = self.blocks_config.config_for_block(key, [], block)
            else:
                continue
            if config:
                yield config


class Sessions(StateHolder):
    """Gradio's StateHolder, whose sessions that keep nothing never push out one that keeps something."""

    def __init__(self, passing: int = PASSING):
        super().__init__()
        self.passing = passing
        self._passing: OrderedDict[str, None] = OrderedDict()  # sessions not yet seen keeping anything, oldest first

    def __getitem__(self, session_id: str) -> SessionState:
        if session_id not in self.session_data:
            with self.lock:
                self.session_data[session_id] = Session(self.blocks)
                self._passing[session_id] = None
        self.update(session_id)
        self.time_last_used[session_id] = datetime.datetime.now()
        return self.session_data[session_id]

    def update(self, session_id: str):
        with self.lock:
            if session_id in self.session_data:
                self.session_data.move_to_end(session_id)
            if session_id in self._passing:
                self._passing.move_to_end(session_id)
            self._trim(session_id)

    def _trim(self, current: str) -> None:
        """Sessions that keep nothing beyond `passing`, then any beyond the capacity: those that keep nothing
        first, then the least recently used; never `current`, the one being served (the most recent of both)."""
        while self._passing and (len(self._passing) > self.passing or len(self.session_data) > self.capacity):
            oldest = next(iter(self._passing))
            if oldest == current:
                break
            del self._passing[oldest]
            session = self.session_data.get(oldest)
            if session is not None and not getattr(session, "keeps_something", True):
                self._evict(oldest)
        while len(self.session_data) > self.capacity and next(iter(self.session_data)) != current:
            self._evict(next(iter(self.session_data)))

    def _evict(self, session_id: str) -> None:
        del self.session_data[session_id]
        self.time_last_used.pop(session_id, None)
        self._passing.pop(session_id, None)


def install(app, passing: int = PASSING) -> Sessions:
    """Put a `Sessions` in place of the Gradio app's StateHolder (before it takes requests; any session it holds
    already is kept)."""
    sessions = Sessions(passing)
    sessions.set_blocks(app.get_blocks())  # its capacity: launch's state_session_capacity
    sessions.session_data.update(app.state_holder.session_data)
    sessions.time_last_used.update(app.state_holder.time_last_used)
    app.state_holder = sessions
    return sessions


def forget_finished(queue) -> int:
    """Drop the queue's bookkeeping of the sessions with nothing pending: their empty sets of pending events, and
    their message queues once nothing waits in or on them (no undelivered message, no stream reading); how many
    sessions. Runs on the event loop between two awaits, as the queue's own changes do: a session's next event makes
    both again (gradio/queueing.py, Queue.push)."""
    pending, messages = queue.pending_event_ids_session, queue.pending_messages_per_session
    finished = [session for session, ids in pending.items() if not ids]
    for session in finished:
        pending.pop(session, None)
    idle = [session for session, box in messages.items() if session not in pending and _idle(box)]
    for session in idle:
        messages.pop(session, None)
    return len(set(finished) | set(idle))


def _idle(box: asyncio.Queue) -> bool:
    """No message waits in it and no stream waits on it (asyncio.Queue keeps its waiting readers in `_getters`)."""
    return box.empty() and not getattr(box, "_getters", None)


def bound_bookkeeping(queue, events: int = ANALYTICS_EVENTS) -> None:
    """Keep the queue's last `events` event records, unless the operator set GRADIO_ANALYTICS_MAX_EVENTS."""
    if "GRADIO_ANALYTICS_MAX_EVENTS" not in os.environ:
        queue.ANALYTICS_MAX_EVENTS = events


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the system (glibc's malloc_trim(0)); whether it could. Python's allocator
    and the tokenizer free into glibc's per-thread heaps, which keep the pages after a load: the server's resident
    memory stays at its peak without this."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return False
    trim(0)
    return True


async def tidy(app, every: float = TIDY_EVERY_S) -> None:
    """Every `every` seconds until cancelled: `forget_finished` on the app's queue, then `release_freed_memory`."""
    while True:
        await asyncio.sleep(every)
        forget_finished(app.get_blocks()._queue)
        release_freed_memory()
