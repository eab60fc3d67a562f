"""The Batch file tab's handler: a file in, scored results and a preview of its first items out; what Stop, or a
new file, says it stopped (Runs, shared with the Evaluate and Probe tabs)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import numpy as np
import pandas as pd
import pytest

from armorm_ui.errors import ArmoRMError, ScoringError
from armorm_ui.validation import Limits

from .test_batch import ITEMS, expected_messages, wide_frame, write


def test_batch_tab_scores_a_file(tmp_path, scorer):
    from armorm_ui.ui.batch import score_file

    src = write(wide_frame(), tmp_path / "in.jsonl")
    seen = []
    out, summary = score_file(scorer, str(src), "Parquet", Limits(), 100, progress=lambda p, desc: seen.append(p))
    assert "3 items" in summary and seen == [(0, 3), (1, 3), (2, 3)]
    back = pd.read_parquet(out)
    api = scorer.score(expected_messages(ITEMS[0]), ITEMS[0]["responses"])
    np.testing.assert_allclose(back[back["item_id"] == "card"]["score"], api.scores, atol=1e-9)


def test_the_preview_shows_the_first_items_as_scored(tmp_path, fake_scorer):
    """The first PREVIEW_ITEMS items: id, the prompt on one shortened line (as typed), the best answer and every
    score, best first, the same scores as the results file."""
    from armorm_ui.explain import candidate_labels
    from armorm_ui.ui.batch import PREVIEW_ITEMS, scored_file

    long = "<b>Why</b> **is**\n the sky   blue? " + "Tell me more. " * 20
    rows = [{"item_id": f"i{k}", "prompt": long if k == 0 else f"Question {k}?", "response_1": f"Short {k}.",
             "response_2": f"A longer answer, number {k}, " + "with detail " * k, "response_3": "No."}
            for k in range(PREVIEW_ITEMS + 3)]  # fmt: skip
    src = write(pd.DataFrame(rows), tmp_path / "in.csv")
    found = scored_file(fake_scorer, str(src), "CSV", Limits(), 100)
    preview, back = found["preview"], pd.read_csv(found["file"])
    assert found["items"] == PREVIEW_ITEMS + 3 and len(preview) == PREVIEW_ITEMS
    n = PREVIEW_ITEMS + 3
    assert f"**{n} items** ({3 * n} candidates) from in\\.csv" in found["summary"]
    item, prompt, best, scores = preview[0]
    assert item == "i0" and prompt.startswith("<b>Why</b> **is** the sky blue? Tell me more.")  # one line, as typed
    assert len(prompt) == 90 and prompt.endswith("…")
    for (item, _, best, scores), row in zip(preview, rows):
        mine = back[back["item_id"] == item].set_index("candidate")["score"]
        order = mine.sort_values(ascending=False, kind="stable").index.tolist()
        assert [s.split("\u00a0")[0] for s in scores.split(", ")] == order  # best first
        assert [float(s.split("\u00a0")[1]) for s in scores.split(", ")] == pytest.approx(
            mine[order].tolist(), abs=1e-4
        )
        k = candidate_labels(3).index(order[0])
        text = " ".join(row[f"response_{k + 1}"].split())  # the best answer: its label and text, shortened
        assert best == f"{order[0]}: {text}" or (best.endswith("…") and text.startswith(best[3:-1]))


class NoSlot:
    """A scorer's long-job context and nothing else: the job below never reaches a model."""

    def job(self):
        return contextlib.nullcontext()


DEADLINE = 60  # seconds: each wait ends on its condition; this only bounds a broken run


def gated_job(reached: threading.Event, at: int, total: int = 100):
    """A job of `total` items whose progress is reported as the tabs' jobs report it; it waits at item `at` until
    it is told to stop (never on a clock)."""

    def job(what, progress=None, should_stop=None, name=None):
        for i in range(total):
            if should_stop():
                raise ScoringError(f"Stopped after {i} of {total} items; nothing was written.")
            progress((i, total), desc=f"item {i + 1} of {total}")
            if i == at:
                reached.set()
                deadline = time.monotonic() + DEADLINE
                while not should_stop():
                    assert time.monotonic() < deadline, "never stopped"
                    time.sleep(0.005)
        return {"what": what, "name": name}

    return job


async def until(event: threading.Event) -> None:
    deadline = time.monotonic() + DEADLINE
    while not event.is_set():
        assert time.monotonic() < deadline, "the job never got there"
        await asyncio.sleep(0.005)


LOST = "results are written only when the whole file is scored"


@pytest.mark.parametrize("order", ["stop, then Gradio's cancel", "Gradio's cancel, then stop"])
def test_stop_says_how_far_the_job_got(order):
    """Stop's message counts the items done when it was pressed and says nothing was kept, whichever of Gradio's
    cancel (Stop's `cancels`) and Stop's own handler reaches the server first."""
    from armorm_ui.ui.batch import Runs

    runs, reached = Runs("item", LOST), threading.Event()

    async def main():
        assert runs.announce("/tmp/x/<b>big</b>.csv", "<b>big</b>.csv")
        task = asyncio.create_task(runs.run("/tmp/x/<b>big</b>.csv", "<b>big</b>.csv", NoSlot(),
                                            gated_job(reached, at=40), "big"))  # fmt: skip
        await until(reached)
        if order.startswith("stop"):
            said = runs.stop()
            task.cancel()
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            said = runs.stop()
        assert said == f"**Stopped** after 40 of 100 items of &lt;b&gt;big&lt;/b&gt;\\.csv. Nothing was kept: {LOST}."
        assert isinstance((await asyncio.gather(task, return_exceptions=True))[0], asyncio.CancelledError)
        assert runs.stop() is None  # said once; nothing is running now

    asyncio.run(main())


def test_a_stop_that_comes_as_the_job_halts_is_what_the_page_says():
    """Without Gradio's cancel (a new file, or a cancel that came too late) the job halts at its next check and its
    handler returns the same message."""
    from armorm_ui.ui.batch import NEW_FILE, Runs, Stopped

    runs, reached = Runs("item", LOST), threading.Event()

    async def main():
        task = asyncio.create_task(runs.run("a.csv", "a.csv", NoSlot(), gated_job(reached, at=7), "a"))
        await until(reached)
        assert runs.chose("a.csv") == (False, None)  # a late event for the file being scored: it goes on
        changed, said = runs.chose("b.csv")
        assert changed and said == f"**Stopped**{NEW_FILE} after 7 of 100 items of a\\.csv. Nothing was kept: {LOST}."
        with pytest.raises(Stopped) as e:
            await task
        assert e.value.said == said

    asyncio.run(main())


def test_a_finished_run_is_shown_until_another_file_is_chosen():
    from armorm_ui.ui.batch import Runs

    runs = Runs("item", LOST)

    def quick(what, progress=None, should_stop=None, name=None):
        progress((0, 2), desc="pair 1 of 2")
        return {"what": what, "name": name}

    assert asyncio.run(runs.run("a.csv", "a.csv", NoSlot(), quick, "a")) == {"what": "a", "name": "a.csv"}
    assert runs.stop() is None  # nothing running: Stop leaves the page as it is
    assert runs.chose("a.csv") == (False, None)  # the upload's event, late: the results are this file's
    assert runs.chose(None) == (True, None)  # removed: the results go, nothing was running


def test_a_request_for_a_file_replaced_while_it_waited_never_runs():
    """Score pressed, the job waits in the queue; the file is replaced and Score pressed again: the first request,
    when its turn comes, neither runs nor touches the page; a stopped one that waited says it was stopped."""
    from armorm_ui.ui.batch import Runs, Stopped

    runs, ran = Runs("item", LOST), []

    def job(what, progress=None, should_stop=None, name=None):
        ran.append(what)
        return {"what": what, "name": name}

    assert runs.announce("a.csv", "a.csv")
    changed, said = runs.chose("b.csv")
    assert changed and said.startswith("**Stopped** when another file was chosen, before any item of a\\.csv")
    assert runs.announce("b.csv", "b.csv")
    with pytest.raises(Stopped) as e:
        asyncio.run(runs.run("a.csv", "a.csv", NoSlot(), job, "a"))
    assert e.value.said is None and ran == []  # quiet: the page is b.csv's
    assert asyncio.run(runs.run("b.csv", "b.csv", NoSlot(), job, "b")) == {"what": "b", "name": "b.csv"}
    assert runs.announce("c.csv", "c.csv") and runs.stop().startswith("**Stopped** before any item of c\\.csv")
    with pytest.raises(Stopped) as e:
        asyncio.run(runs.run("c.csv", "c.csv", NoSlot(), job, "c"))
    assert e.value.said.startswith("**Stopped** before any item") and ran == ["b"]


def test_the_file_is_named_as_the_page_shows_it(tmp_path, fake_scorer):
    """Gradio stores an upload under a name without characters such as ? ! * < >: the summary, Stop's message and a
    refusal name the file as the page shows it (the name announced by the button's first step)."""
    from armorm_ui.ui.batch import Runs, scored_file

    stored = tmp_path / "why.csv"
    write(wide_frame(), stored)
    runs = Runs("item", LOST)
    assert runs.announce(str(stored), "why?.csv")
    out = asyncio.run(runs.run(str(stored), "why.csv", NoSlot(), scored_file, fake_scorer, str(stored), "CSV",
                               Limits(), 100))  # fmt: skip
    assert out["summary"] == "Scored **3 items** (8 candidates) from why?\\.csv.", out["summary"]  # as_text
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,response_1\nq,\n", encoding="utf-8")
    assert runs.announce(str(bad), "<b>bad</b>!.csv")
    with pytest.raises(
        ArmoRMError, match=r"^<b>bad</b>!\.csv: 1 problem\(s\), nothing was scored:\n- line 2: no responses"
    ):
        asyncio.run(runs.run(str(bad), "bad.csv", NoSlot(), scored_file, fake_scorer, str(bad), "CSV", Limits(), 100))


def stuck_jobs(n: int, release: threading.Event, started: list):
    """n long jobs (handlers.long_job) in a step that does not check its stop flag, until `release`; returns once
    as many as have a thread have started: their tasks."""
    from armorm_ui.ui.handlers import JOB_THREADS, long_job

    def stuck(k, should_stop=None):
        started.append(k)
        release.wait(DEADLINE)

    async def start():
        jobs = [asyncio.create_task(long_job(NoSlot(), stuck, k)) for k in range(n)]
        deadline = time.monotonic() + DEADLINE
        while len(started) < min(n, JOB_THREADS._max_workers):
            assert time.monotonic() < deadline, "the jobs never started"
            await asyncio.sleep(0.005)
        return jobs

    return start()


def test_jobs_running_or_stopping_never_hold_up_an_interactive_call():
    """As many long jobs as the event loop has default threads (min(32, cores + 4)), all in a step that does not
    check its stop flag (a stopped job reading its file): an interactive call still gets a thread at once."""
    import os

    from armorm_ui.ui.handlers import cancellable

    release, started = threading.Event(), []

    async def main():
        jobs = await stuck_jobs(min(32, (os.cpu_count() or 1) + 4), release, started)
        try:
            return await asyncio.wait_for(cancellable(lambda should_stop=None: "answered"), timeout=20)
        finally:
            release.set()
            await asyncio.gather(*jobs, return_exceptions=True)

    assert asyncio.run(main()) == "answered"


def test_a_job_stopped_while_it_waits_for_a_thread_never_starts():
    from armorm_ui.ui.handlers import JOB_THREADS, long_job

    release, started = threading.Event(), []

    async def main():
        jobs = await stuck_jobs(JOB_THREADS._max_workers, release, started)
        waiting = asyncio.create_task(long_job(NoSlot(), lambda should_stop=None: started.append("late")))
        await asyncio.sleep(0)  # it has asked for a thread
        waiting.cancel()
        assert isinstance((await asyncio.gather(waiting, return_exceptions=True))[0], asyncio.CancelledError)
        release.set()
        await asyncio.gather(*jobs)
        JOB_THREADS.submit(lambda: None).result(timeout=DEADLINE)  # every thread free again: the queue is empty

    asyncio.run(main())
    assert "late" not in started and len(started) == JOB_THREADS._max_workers
