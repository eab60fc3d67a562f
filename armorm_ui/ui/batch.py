"""The batch tab: upload a file, see every bad row before anything is scored, score with a progress bar, see the
first rows scored, download.

Scoring runs item by item in the model slot; Stop (or closing the tab) ends it before the next item, and says how
far it got. A new file clears the old results at once (and stops a run still going), so nothing on screen belongs
to another file.

`Runs` is shared with the Evaluate and Probe tabs: each visitor's job in a tab, as far as its progress bar got, so
that Stop can say what it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..batch import parse_items, results_frame, write_results
from ..errors import ArmoRMError, InputError
from ..scratch import scratch_folder
from ..validation import Limits
from . import handlers
from .handlers import JOBS, as_text, friendly, long_job, visitor

OUTPUT_FORMATS = {"CSV": ".csv", "JSONL": ".jsonl", "Parquet": ".parquet"}
PREVIEW_ITEMS = 5
"""Items shown in the preview table (the download has every one)."""
PREVIEW_COLUMNS = ["Item", "Prompt", "Best", "Scores"]


def shortened(text: str, chars: int) -> str:
    """One line of at most `chars` characters: whitespace runs become one space, a longer text ends with '…'."""
    line = " ".join(str(text).split())
    return line if len(line) <= chars else line[: chars - 1].rstrip() + "…"


def preview_rows(items, results, n: int = PREVIEW_ITEMS) -> list[list[str]]:
    """The first n items scored: id, the last user turn (shortened), the best candidate (label and its text,
    shortened) and every candidate's score, best first."""
    from ..explain import candidate_labels, ranks

    rows = []
    for item, result in zip(items[:n], results):
        labels, order = candidate_labels(result.n), ranks(result.scores).argsort()
        best = int(order[0])
        rows.append([item.item_id, shortened(item.messages[-1]["content"], 90),
                     f"{labels[best]}: {shortened(item.candidates[best], 60)}",
                     ", ".join(f"{labels[k]}\u00a0{result.scores[k]:+.4f}" for k in order)])  # fmt: skip
    return rows


def scored_file(scorer, path: str, fmt: str, limits: Limits, max_rows: int, progress=None, should_stop=None, *,
                name: str | None = None) -> dict:  # fmt: skip
    """Validate the whole file, score every item (in chunks: scorer.score_many), write the results; returns the
    results file, the summary and the preview's rows. `should_stop` is polled between chunks and by the scorer
    between forward passes; `name`: the file's name as the page shows it (Gradio stores an upload under a name
    without characters such as ? ! * < >), for the summary."""
    if not isinstance(fmt, str) or fmt not in OUTPUT_FORMATS:
        raise InputError(f"Results format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}.")
    items = parse_items(Path(path), limits, max_rows)

    def shown(done: int, total: int) -> None:
        if progress is not None:
            progress((done, total), desc=f"item {done + 1} of {total}")

    results = scorer.score_many([(i.messages, i.candidates) for i in items], should_stop, shown)
    out = scratch_folder("armorm-batch-") / (Path(path).stem + "-scored" + OUTPUT_FORMATS[fmt])
    write_results(results_frame(items, results), out)
    n = sum(len(i.candidates) for i in items)
    summary = f"Scored **{len(items)} items** ({n} candidates) from {as_text(name or Path(path).name)}."
    return {"file": str(out), "summary": summary, "preview": preview_rows(items, results), "items": len(items)}


def score_file(scorer, path: str, fmt: str, limits: Limits, max_rows: int, progress=None, should_stop=None):
    """scored_file's results file and summary: (output path, summary)."""
    found = scored_file(scorer, path, fmt, limits, max_rows, progress, should_stop)
    return found["file"], found["summary"]


@dataclass(eq=False)
class Run:
    """One visitor's job in one tab: what it works on, how far its progress bar got, and how it ended."""

    key: object
    """What it runs on (a file's path, a data set's name and split): a new choice with another key stops it."""
    name: str
    """The file or data set as the user named it."""
    unit: str
    done: int = 0
    total: int | None = None
    taken: bool = False
    """Its handler has started (until then it waits in the queue, announced by the button's first step)."""
    cancelled: bool = False
    """Gradio cancelled its handler (Stop's `cancels`, a closed tab) before Stop's own message was made."""
    stopped: str | None = None
    """What Stop (or a new file) said when it stopped this run; the job halts at its next model call."""

    def watching(self, progress):
        """`progress` as the job calls it (progress((done, total), desc="item 3 of 9")), remembered here too."""

        def shown(value, desc=None, **kwargs):
            if isinstance(value, tuple) and len(value) == 2:
                self.done, self.total = value
            found = re.match(r"(\w+) \d+ of \d+$", desc or "")
            if found:
                self.unit = found[1]
            if progress is not None:
                progress(value, desc=desc, **kwargs)

        return shown

    def halting(self, fn):
        """fn, given the run's name, whose `should_stop` is also true once this run is stopped (Gradio's own cancel
        aside)."""

        def halted(*args, should_stop=None):
            stop = lambda: self.stopped is not None or bool(should_stop and should_stop())  # noqa: E731
            return fn(*args, should_stop=stop, name=self.name)

        return halted

    def said(self, lost: str, why: str = "") -> str:
        """What stopping it kept and lost, in the page's words: 'Stopped after 120 of 500 items of x.csv.'"""
        name = as_text(self.name)
        if self.done and self.total:
            where = f"after {self.done:,} of {self.total:,} {self.unit}s of {name}"
        else:
            where = f"before any {self.unit} of {name} was scored"
        return f"**Stopped**{why} {where}. Nothing was kept: {lost}."


class Stopped(Exception):
    """Runs.run's job was stopped (`said`: what the page says now), or superseded by a later request (`said` None:
    the page belongs to that one, leave it as it is)."""

    def __init__(self, said: str | None):
        super().__init__(said)
        self.said = said


class Runs:
    """Each visitor's long job in one tab, from the button press to its end, so that Stop, or a new file, can say
    what it stopped, and a result never lands on a page whose file has changed. `lost`: why a stopped job keeps
    nothing. A visitor is Gradio's session (one page); everything here runs on the event loop or under the lock."""

    KEPT = 4096
    """Visitors remembered at most (a run whose tab closed mid-job, a page's shown results), oldest forgotten
    first."""

    def __init__(self, unit: str, lost: str):
        self.unit, self.lost = unit, lost
        self._runs: dict[str, Run] = {}  # visitor -> the run now (or a stopped or cancelled one, until looked at)
        self._shown: dict[str, object] = {}  # visitor -> the key whose results the page shows
        self._lock = threading.Lock()  # handlers without `async` run in worker threads

    def announce(self, key, name: str) -> bool:
        """The button was pressed (the first, unqueued step; `name`: the file's name as the page shows it): False
        when a job of this visitor is still going (its page is left as it is; the queued handler will be
        refused)."""
        with self._lock:
            now = self._runs.get(visitor())
            if now is not None and now.taken and not now.cancelled and now.stopped is None:
                return False
            self._keep(Run(key, name, self.unit))
            self._shown.pop(visitor(), None)
            return True

    def _keep(self, run, into: dict | None = None) -> None:
        into = self._runs if into is None else into
        into.pop(visitor(), None)  # to the end: the oldest are forgotten first
        into[visitor()] = run
        while len(into) > self.KEPT:
            del into[next(iter(into))]

    def _take(self, key, name: str) -> Run | None:
        with self._lock:
            now = self._runs.get(visitor())
            if now is not None and not now.taken:
                if now.key != key:
                    return None  # announced for another file since: this request is stale
                now.taken = True
                return now
            run = Run(key, name, self.unit, taken=True)
            if now is None or now.cancelled or now.stopped is not None:
                self._keep(run)  # an API call (nothing announced), or after a stopped run
            return run  # else a second job while one runs: not registered; long_job refuses it

    def _end(self, run: Run, cancelled: bool) -> None:
        with self._lock:
            if self._runs.get(visitor()) is run:
                if cancelled and run.stopped is None:
                    run.cancelled = True  # Stop's message may still be on its way: it reads this run
                else:
                    del self._runs[visitor()]

    async def run(self, key, name: str, scorer, fn, *args, progress=None, uploaded: str | None = None):
        """fn(*args, progress, should_stop=..., name=...) as a long job (handlers.long_job) watched by this tab: its
        result, or Stopped when Stop or a new file ended it, or a later request replaced it. `name`: the input's
        name as the job's own messages give it; `fn` is given the one the page shows (announce), and a refusal
        says that one too. `uploaded`: the visitor's upload that fn reads, deleted when this request ends however
        it ends (handlers.upload); one deleted already is refused here, after the run is taken, so that the page's
        announced run ends with the refusal."""
        run = self._take(key, name)
        cancelled = False
        try:
            with handlers.upload(uploaded) if uploaded is not None else contextlib.nullcontext():
                if run is None:
                    raise Stopped(None)
                if run.stopped is None:
                    out = await long_job(scorer, run.halting(fn), *args, run.watching(progress))
        except asyncio.CancelledError:
            cancelled = True
            raise
        except ArmoRMError as e:
            if run is None:  # a stale request whose upload is gone: it leaves the page alone all the same
                raise Stopped(None) from e
            if run.stopped is None:
                if name and run.name != name:  # the file as the user named it, not as Gradio stored it
                    e.args = tuple(run.name + a[len(name) :] if isinstance(a, str) and a.startswith(name) else a
                                   for a in e.args)  # fmt: skip
                raise
        finally:
            if run is not None:
                self._end(run, cancelled)
        if run.stopped is not None:  # halted, or Stop came as it finished: what the page says stands
            raise Stopped(run.stopped)
        with self._lock:
            self._keep(key, self._shown)
        return out

    def stop(self, why: str = "") -> str | None:
        """Stop pressed: what the visitor's job had done (None: nothing was running); it halts at its next model
        call, or, still queued, never starts."""
        with self._lock:
            return self._stop(why)

    def _stop(self, why: str) -> str | None:
        run = self._runs.get(visitor())
        if run is None or run.stopped is not None:
            return None
        if run.cancelled:
            del self._runs[visitor()]
        run.stopped = run.said(self.lost, why)
        self._shown.pop(visitor(), None)
        return run.stopped

    def chose(self, key, why: str = "") -> tuple[bool, str | None]:
        """A new file or data set was chosen (or the file removed: key None): (False, None) when it is the one
        being run or shown (the event came late), else (True, what was stopped, if anything): the page's results
        must go. `why`: how Stop's message says it (' when another file was chosen,'; the default says that, or
        that the file was removed)."""
        with self._lock:
            run = self._runs.get(visitor())
            going = run is not None and not run.cancelled and run.stopped is None
            if (going and run.key == key) or (not going and key is not None and self._shown.get(visitor()) == key):
                return False, None
            self._shown.pop(visitor(), None)
            return True, self._stop(why or (" when the file was removed," if key is None else NEW_FILE))


NEW_FILE = " when another file was chosen,"
SHOWN_NAME_JS = "(...a) => { const f = a[0]; a[a.length - 1] = (f && f.orig_name) || null; return a; }"
"""For a button's first step whose inputs are the upload first and a hidden Textbox last: the Textbox gets the file's
name as the page shows it (Gradio stores an upload under a name without characters such as ? ! * < >)."""


def shown_name(path, shown) -> str:
    """The name for the page's messages: as the page shows it (on one line, at most 255 characters, as a file's name
    may be), else as stored."""
    shown = " ".join(shown.split())[:255] if isinstance(shown, str) else ""
    return shown or Path(path).name


WORKING = "&nbsp;\n\n&nbsp;"
"""A tab's message while its job runs: two blank lines, room for the progress bar Gradio draws over it (an empty
message has no height, and the bar would not show)."""


def build_batch_tab(scorer, config) -> None:
    gr.Markdown(
        "Upload a **CSV, JSONL or Parquet** file: wide (`prompt`, `response_1`, `response_2`...) or long "
        "(`item_id`, `prompt`, `response`), optionally with `system` and `conversation` columns. Every row is "
        "checked first; if any is bad, you get the full list and nothing is scored."
    )
    with gr.Row():
        upload = gr.File(label="File to score", file_types=[".csv", ".jsonl", ".parquet"], elem_id="batch-upload")
        with gr.Column():
            fmt = gr.Radio(list(OUTPUT_FORMATS), value="CSV", label="Results format")
            with gr.Row():
                run = gr.Button("Score file", variant="primary", elem_id="batch-run", scale=3)
                stop = gr.Button("Stop", elem_id="batch-stop", scale=1)
    summary = gr.Markdown(elem_id="batch-summary")
    preview = gr.Dataframe(headers=PREVIEW_COLUMNS, label="First items scored", elem_id="batch-preview",
                           interactive=False, wrap=True, visible=False, max_height=720,
                           column_widths=["16%", "28%", "24%", "32%"])  # fmt: skip
    download = gr.DownloadButton("Download results", value=None, interactive=False, elem_id="batch-download")
    found = gr.State(None)  # the preview's rows: a State, so the API's /score_file still returns (summary, file)
    named = gr.Textbox(visible=False)  # the file's name as the page shows it (SHOWN_NAME_JS)
    runs = Runs("item", "results are written only when the whole file is scored")
    gone = {summary: "", download: gr.update(value=None, interactive=False, label="Download results"),
            found: None, preview: gr.update(value=None, visible=False)}  # fmt: skip

    def started(path, shown):
        """Score pressed: the last results go (they are about to be replaced), and Stop knows of the run."""
        name = shown_name(path, shown) if path and isinstance(path, str) else ""
        if name and runs.announce(path, name):
            return {**gone, summary: WORKING}
        return gr.skip()

    @friendly
    async def scored(path, out_format, progress=gr.Progress()):  # noqa: B008 - how Gradio injects a progress bar
        if not path or not isinstance(path, str):
            raise gr.Error("Choose a file first.")
        try:
            out = await runs.run(path, Path(path).name, scorer, scored_file, scorer, path, out_format,
                                 config.limits(), config.max_rows, progress=progress, uploaded=path)  # fmt: skip
        except Stopped as e:  # the preview goes with `found` (previewed, next)
            return {summary: e.said, download: gone[download], found: None} if e.said else gr.skip()
        file = Path(out["file"]).name
        return {summary: out["summary"], found: {"rows": out["preview"], "items": out["items"]},
                download: gr.update(value=out["file"], interactive=True, label=f"Download {file}")}  # fmt: skip

    def previewed(st):
        if not st:
            return gr.update(value=None, visible=False)
        shown, n = len(st["rows"]), st["items"]
        label = (f"The first {shown} of {n:,} items: the best answer and every score, best first (the download "
                 "has every candidate and the 19 objectives)" if shown < n else
                 "Every item: the best answer and every score, best first (the download adds the 19 "
                 "objectives)")  # fmt: skip
        return gr.update(value=st["rows"], visible=True, label=label)

    def stopped():
        said = runs.stop()
        return {**gone, summary: said} if said else gr.skip()

    def chosen(path):
        """A new file (or none): the old results go at once, and a run of another file stops."""
        changed, said = runs.chose(path if isinstance(path, str) and path else None)
        return {**gone, summary: said or ""} if changed else gr.skip()

    outputs = [summary, download, found, preview]
    scoring = run.click(
        started, [upload, named], outputs, js=SHOWN_NAME_JS, queue=False, api_visibility="private"
    ).then(
        scored,
        [upload, fmt],
        [summary, download, found],
        api_name="score_file",
        concurrency_id="jobs",
        concurrency_limit=JOBS,
        api_visibility="undocumented",
    )  # the page's own call, not offered as API or tool: use the CLI
    scoring.then(previewed, found, preview, queue=False, api_visibility="private", show_progress="hidden")
    stop.click(stopped, None, outputs, cancels=[scoring], queue=False, api_visibility="private")
    upload.change(chosen, upload, outputs, queue=False, api_visibility="private", show_progress="hidden")
