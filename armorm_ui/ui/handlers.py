"""Gradio handlers raise gr.Error with the project's own messages, shown as text; model work runs cancellably.

`friendly` turns the project's refusals into gr.Error: no stack trace, one line in the server log, and the message
escaped for the page (Gradio renders a pop-up's message as HTML, and it may quote what a user typed) but as written for
API and MCP callers, who read it as text. `cancellable` runs model work in a worker thread that stops at its next
forward pass (or between batch items) when Gradio cancels the event. `long_job` runs a batch file, an evaluation or a
probe run: one per visitor at a time, behind interactive requests at every chunk, in threads of its own. `upload` hands
a handler the file a visitor uploaded and deletes it when the handler is done with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import html
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from ..errors import ArmoRMError, InputError, ScoringError


def as_text(value) -> str:
    """User text placed in Markdown or HTML: shown as typed, never as markup (tags, links, emphasis)."""
    escaped = html.escape(str(value), quote=True)
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|~>" else ch for ch in escaped)


def caller() -> str:
    """Who sent the request being handled: "app" (the page), "api" (gradio_client or @gradio/client), "mcp" (Gradio's
    MCP server), from the x-gradio-user header that Gradio's own clients send so that a server can tell them apart
    (gradio-app/gradio#12600); "api" too for a request to the HTTP API's call route (/gradio_api/call/..., as curl
    uses it), which the page never uses; "" for any other request, or none."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    try:
        who = dict(request.headers).get("x-gradio-user", "")
        path = str(request.url.path)
    except (AttributeError, TypeError):
        return ""
    return str(who) or ("api" if "/gradio_api/call/" in path else "")


READS_TEXT = ("api", "mcp")
"""Callers that read a refusal as text. Any other (the page, or an unknown one) may render it as HTML: it is escaped."""


def refusal(e: Exception, where: str = "") -> gr.Error:
    """The gr.Error for one of the project's refusals, and its one line in the server log (no traceback: a refusal
    of bad input is routine)."""
    who = caller()
    text = str(e)
    line = " ".join(text.split())
    print(f"refused {where or 'a request'} ({who or 'unknown caller'}): {line[:300]}", file=sys.stderr, flush=True)
    if who not in READS_TEXT:
        text = html.escape(text).replace("\n", "<br>")
    return gr.Error(text, print_exception=False)


def friendly(fn):
    """Turn the project's own errors into gr.Error with their message (no stack trace reaches the user or the log)."""
    where = getattr(fn, "__name__", "")

    if asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except ArmoRMError as e:
                raise refusal(e, where) from e

        return async_wrapper

    @functools.wraps(fn)  # keeps the signature: gr.api reads the typed parameters from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArmoRMError as e:
            raise refusal(e, where) from e

    return wrapper


async def cancellable(fn, *args, **kwargs):
    """Run fn(*args, **kwargs, should_stop=...) in a worker thread with the caller's context (Gradio's request and
    progress live in context variables). When Gradio cancels the event (a Stop button, a closed tab), the awaiting
    task is cancelled: the flag is raised, and the work stops at its next forward pass instead of holding the model
    for a result nobody will see. The scorer's lock keeps it the only model call until it has stopped."""
    return await _stoppable(None, fn, args, kwargs)


async def _stoppable(pool, fn, args, kwargs):
    """`cancellable` in `pool` (None: the event loop's default threads)."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(fn, *args, **kwargs, should_stop=stop.is_set)
    future = loop.run_in_executor(pool, context.run, _unless_stopped, stop, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # its "stopped" error has no reader
        raise


def _unless_stopped(stop: threading.Event, call):
    """call(), unless it was stopped while it waited for a thread: then it never starts (a job's first step, reading
    its file, checks no flag)."""
    if stop.is_set():
        raise ScoringError("Stopped before it started.")
    return call()


JOBS = 4
"""Long jobs running at once (Gradio's "jobs" queue): they share the model chunk by chunk, after interactive calls."""
JOBS_PER_VISITOR = 1
"""Long jobs one visitor (browser session, or API client) may run at once."""
JOB_THREADS = ThreadPoolExecutor(max_workers=2 * JOBS, thread_name_prefix="long-job")
"""Long jobs' threads, apart from the event loop's default ones that interactive calls run in (min(32, cores + 4):
6 on 2 cores). A stopped job keeps its thread until its next check (a file is read and checked whole first), so
running and stopping jobs could otherwise take every thread, and an interactive request would wait for them to end
rather than for one chunk. Room for the jobs that run (JOBS) and as many still stopping; past that, a new job waits
for a thread, never an interactive request."""
_running: Counter[str] = Counter()  # visitor -> long jobs running now (touched only on the event loop)


def visitor() -> str:
    """The caller's session, from Gradio's request context ('' outside a request)."""
    from gradio.context import LocalContext

    return str(getattr(LocalContext.request.get(None), "session_hash", "") or "")


async def long_job(scorer, fn, *args, **kwargs):
    """A long job (a batch file, an evaluation, a probe run): one at a time per visitor, its model calls taken as a
    job's (Scorer.job: interactive requests go before each of its chunks), stopped as `cancellable` stops."""
    who = visitor()
    if who and _running[who] >= JOBS_PER_VISITOR:
        raise gr.Error(
            "You have a job running already (a batch file, an evaluation or a probe run): wait for it to finish or "
            "press its Stop, then start this one.",
            print_exception=False,
        )
    _running[who] += 1
    try:
        with scorer.job():  # a context variable: the worker thread gets it with the copied context
            return await _stoppable(JOB_THREADS, fn, args, kwargs)
    finally:
        _running[who] -= 1
        if not _running[who]:
            del _running[who]


def _upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


_reading: Counter[str] = Counter()  # upload path -> requests reading it now
_reading_lock = threading.Lock()


@contextmanager
def upload(path) -> Iterator[Path]:
    """The file a visitor uploaded (Gradio's path for it), deleted when the block ends, whether the handler read it
    all, refused it or was stopped: the server keeps no upload longer than the request that reads it (Gradio would
    keep it an hour). A file that is gone already (a handler ran on it before: the page still shows its name) is
    refused with a message that says to upload it again. Only a file inside Gradio's upload folder is deleted, with
    the folder Gradio made for it when that is left empty. Gradio names an upload by its content, so two visitors
    who upload the same file share one path: it is deleted when the last request reading it ends."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError("Choose a file first.")
    found = Path(path)
    with _reading_lock:
        if not found.is_file():
            raise InputError(f"The file {found.name} is no longer on the server: an upload is deleted once it has "
                             "been read. Upload it again.")  # fmt: skip
        _reading[str(found)] += 1
    try:
        yield found
    finally:
        with _reading_lock:
            _reading[str(found)] -= 1
            last = not _reading[str(found)]
            if last:
                del _reading[str(found)]
                discard_upload(found)


def discard_upload(path: Path) -> None:
    """Delete an uploaded file (inside Gradio's upload folder only) and its folder if empty, and drop it from the
    lists Gradio's hourly clean-up walks (it keeps there for ever a path it cannot find)."""
    from gradio.context import LocalContext

    real, root = path.resolve(), _upload_folder()
    if root not in real.parents:
        return
    try:
        real.unlink(missing_ok=True)
        if real.parent != root:
            real.parent.rmdir()  # Gradio's folder for this upload (named by its content's hash), if left empty
    except OSError:
        pass
    blocks = LocalContext.blocks.get(None)
    for kept in getattr(blocks, "temp_file_sets", ()):
        kept.discard(str(path))
        kept.discard(str(real))
