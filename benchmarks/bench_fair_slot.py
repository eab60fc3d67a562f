"""How long an interactive request waits for the model while long jobs run: the fair model slot, measured.

    python benchmarks/bench_fair_slot.py --rows 5000 --pairs 5000 --seconds 60

Starts app.py on the demo checkpoint (loopback), then a probe visitor sends a two-candidate /score every second:
first alone (the idle baseline), then beside three busy visitors: one running a `--rows`-item batch file
(/score_file), one a `--pairs`-pair evaluation (the Evaluate tab's own call, through the queue as the page makes it)
and one who starts batches and stops them every `--cancel-every` seconds. A job that finishes is started again, so
the load lasts the whole phase; every job's file is new (its texts carry the visitor and the run), so no score comes
from the result cache. `--pairs 0` puts a second batch visitor in the evaluation's place.

Bounded in count and time: each phase lasts `--seconds`, each probe call waits at most `--timeout` seconds (a call
that takes longer counts as that long, and is reported), and every busy visitor stops its job when the phase ends.
Reports the probe's median and worst time per call in both phases and their ratio (side by side, one run), and each
busy visitor's jobs: started, finished, refused, stopped, and how far the furthest one got. Figures go to
benchmarks/fair_slot_results.json.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import pandas as pd
from gradio_client import handle_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_test  # noqa: E402

CONVERSATION = [{"role": "user", "content": "Is the sky blue?"}]
LIMIT_S = 3.0
"""The probe's worst wait beside the load must stay under this."""
READ_S = 30.0
"""Longest the canceller waits for its batch to reach the model before it stops it all the same."""


def probe(url: str, seconds: float, timeout: float) -> tuple[list[float], int]:
    """A /score every second for `seconds`: the time of each call (a call past `timeout` counts as `timeout`), and
    how many went past it."""
    client, waits, late, end = load_test.connect(url), [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        job = client.submit(CONVERSATION, ["Yes, on a clear day.", "No."], api_name="/score")
        try:
            job.result(timeout=timeout)
        except TimeoutError:
            job.cancel()
            late += 1
        waits.append(min(time.monotonic() - start, timeout))
        time.sleep(max(0.0, 1.0 - waits[-1]))
    return waits, late


@dataclass
class Jobs:
    """One busy visitor's jobs over the loaded phase."""

    kind: str
    unit: str
    started: int = 0
    finished: int = 0
    stopped: int = 0
    stopped_scoring: int = 0
    """Of those stopped, how many were stopped while their items were being scored."""
    refused: int = 0
    reached: int = 0
    """The furthest any of its jobs got (items or prompts scored)."""
    of: int = 0
    messages: list[str] = field(default_factory=list)
    """The first few refusals, as the server said them."""

    def progressed(self, done, total) -> None:
        if isinstance(done, int) and isinstance(total, int) and done >= self.reached:
            self.reached, self.of = done, total

    def completed(self) -> None:
        self.finished += 1
        self.reached = self.of  # every job of a visitor has the same size

    def refusal(self, text: str) -> None:
        self.refused += 1
        if len(self.messages) < 3:
            self.messages.append(" ".join(str(text).split())[:200])


def batch_csv(folder: Path, rows: int, tag: str) -> str:
    """A `rows`-item batch file whose texts carry `tag` (no item of it is in the result cache)."""
    frame = pd.DataFrame([{"prompt": f"Question {i} ({tag}): why is it so?", "response_1": "Because " * 20,
                           "response_2": f"No {i} {tag}."} for i in range(rows)])  # fmt: skip
    path = folder / f"batch-{tag}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def pairs_csv(folder: Path, pairs: int, tag: str) -> Path:
    """A `pairs`-pair preference file whose texts carry `tag`."""
    frame = pd.DataFrame([{"prompt": f"Question {i} ({tag}): why is it so?", "chosen": "Because " * 20,
                           "rejected": f"No {i} {tag}."} for i in range(pairs)])  # fmt: skip
    path = folder / f"pairs-{tag}.csv"
    frame.to_csv(path, index=False)
    return path


def keep_batching(url: str, rows: int, folder: Path, stop: threading.Event, jobs: Jobs,
                  cancel_after: float | None = None) -> None:  # fmt: skip
    """One visitor's batch files (/score_file), one after another until `stop`; with `cancel_after`, each is
    stopped that many seconds after its first item reached the model (a file takes a few seconds to be read and
    checked first: stopped before then, it would never have held the slot), or after READ_S if it never did."""
    client = load_test.connect(url)
    while not stop.is_set():
        job = client.submit(handle_file(batch_csv(folder, rows, f"{jobs.kind}-{jobs.started}")), "CSV",
                            api_name="/score_file")  # fmt: skip
        jobs.started += 1
        deadline = time.monotonic() + (READ_S if cancel_after else 1e9)
        scoring = False
        while not job.done() and not stop.is_set() and time.monotonic() < deadline:
            units = job.status().progress_data or []
            for unit in units:
                jobs.progressed(unit.index, unit.length)
            if units and not scoring:
                scoring = True
                deadline = time.monotonic() + cancel_after if cancel_after else deadline
            time.sleep(0.1)
        if not job.done():
            job.cancel()
            load_test.wait_for(job.done, timeout=60)
            jobs.stopped += 1
            jobs.stopped_scoring += scoring
            continue
        try:
            job.result(timeout=10)
            jobs.completed()
        except Exception as e:  # a refusal: counted, and its message kept
            jobs.refusal(str(e))


def evaluate_index(http: httpx.Client) -> int:
    """The number of the Evaluate tab's queued call (the page calls it by number: it is not offered as API)."""
    found = [d["id"] for d in http.get("config").json()["dependencies"] if d.get("api_name") == "evaluated"]
    assert len(found) == 1, found
    return found[0]


def listen(http: httpx.Client, session: str, into: queue.Queue) -> None:
    """The session's event stream, message by message, into `into` (None once it ends)."""
    try:
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    into.put(json.loads(line[5:]))
    except httpx.HTTPError:
        pass
    into.put(None)


def evaluate_once(http: httpx.Client, index: int, path: Path, stop: threading.Event, jobs: Jobs) -> None:
    """Upload `path` and evaluate it as the page does (queue/join, then the session's event stream), following its
    progress; cancelled when `stop` comes first."""
    sent = http.post("gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    sent.raise_for_status()
    upload = {"path": sent.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    session = uuid.uuid4().hex
    joined = http.post("gradio_api/queue/join", json={"data": [upload, "", "train", "", ""], "fn_index": index,
                                                      "session_hash": session, "event_data": None})  # fmt: skip
    joined.raise_for_status()
    event = joined.json()["event_id"]
    jobs.started += 1
    messages: queue.Queue = queue.Queue()
    threading.Thread(target=listen, args=(http, session, messages), daemon=True).start()
    scoring = False
    while True:
        try:
            msg = messages.get(timeout=0.25)
        except queue.Empty:
            msg = {}
        if stop.is_set():
            http.post("gradio_api/cancel", json={"session_hash": session, "fn_index": index, "event_id": event})
            jobs.stopped += 1
            jobs.stopped_scoring += scoring
            return
        if msg is None:
            jobs.refusal("the event stream ended without a result")
            return
        for unit in msg.get("progress_data") or []:
            jobs.progressed(unit.get("index"), unit.get("length"))
            scoring = True
        if msg.get("msg") == "process_completed":
            if msg.get("success"):
                jobs.completed()
            else:
                jobs.refusal((msg.get("output") or {}).get("error") or "refused")
            return


def keep_evaluating(url: str, pairs: int, folder: Path, stop: threading.Event, jobs: Jobs) -> None:
    """One visitor's evaluations of a `pairs`-pair file, one after another until `stop`."""
    with httpx.Client(base_url=url, timeout=60) as http:
        index = evaluate_index(http)
        while not stop.is_set():
            evaluate_once(http, index, pairs_csv(folder, pairs, f"evaluation-{jobs.started}"), stop, jobs)


def summary(waits: list[float], late: int) -> dict:
    return {"calls": len(waits), "median_s": statistics.median(waits), "worst_s": max(waits), "past_timeout": late}


def busy_visitors(url: str, args, folder: Path, stop: threading.Event) -> tuple[list[threading.Thread], list[Jobs]]:
    """The three busy visitors' threads (not started) and their records."""
    batch, cancelled = Jobs("batch", "item"), Jobs("cancelled batches", "item")
    second = Jobs("evaluation", "prompt") if args.pairs else Jobs("second batch", "item")
    threads = [threading.Thread(target=keep_batching, args=(url, args.rows, folder, stop, batch), daemon=True),
               threading.Thread(target=keep_batching, args=(url, args.rows, folder, stop, cancelled,
                                                            args.cancel_every), daemon=True)]  # fmt: skip
    if args.pairs:
        threads.append(threading.Thread(target=keep_evaluating, args=(url, args.pairs, folder, stop, second),
                                        daemon=True))  # fmt: skip
    else:
        threads.append(threading.Thread(target=keep_batching, args=(url, args.rows, folder, stop, second),
                                        daemon=True))  # fmt: skip
    return threads, [batch, second, cancelled]


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5000, help="items per batch file")
    ap.add_argument("--pairs", type=int, default=None, help="pairs per evaluation (default: --rows; 0: none)")
    ap.add_argument("--seconds", type=float, default=60, help="length of each phase")
    ap.add_argument("--cancel-every", type=float, default=3.0, help="seconds before the canceller stops its batch")
    ap.add_argument("--timeout", type=float, default=60.0, help="longest a probe call may wait")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the demo checkpoint)")
    ap.add_argument("--json", default="benchmarks/fair_slot_results.json")
    args = ap.parse_args(argv)
    args.pairs = args.rows if args.pairs is None else args.pairs
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    folder = Path(tempfile.mkdtemp(prefix="armorm-fair-"))
    proc, url = load_test.start_app(queue_size=16, model=args.model)
    try:
        probe(url, 5, args.timeout)  # warm-up
        idle = probe(url, args.seconds, args.timeout)
        stop = threading.Event()
        threads, jobs = busy_visitors(url, args, folder, stop)
        for t in threads:
            t.start()
        time.sleep(5)  # the jobs' files are read and their items are being scored
        busy = probe(url, args.seconds, args.timeout)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    found = {"rows": args.rows, "pairs": args.pairs, "seconds": args.seconds, "cancel_every": args.cancel_every,
             "idle": summary(*idle), "beside_jobs": summary(*busy), "jobs": [asdict(j) for j in jobs]}  # fmt: skip
    found["worst_ratio"] = found["beside_jobs"]["worst_s"] / found["idle"]["worst_s"]
    found["worst_under_limit"] = found["beside_jobs"]["worst_s"] < LIMIT_S
    report(found)
    Path(args.json).write_text(json.dumps(found, indent=1) + "\n")
    return found


def report(found: dict) -> None:
    idle, busy = found["idle"], found["beside_jobs"]
    print(f"/score alone:             median {idle['median_s']:.3f} s, worst {idle['worst_s']:.3f} s")
    print(f"/score beside three jobs: median {busy['median_s']:.3f} s, worst {busy['worst_s']:.3f} s "
          f"({found['worst_ratio']:.1f}x the idle worst; under {LIMIT_S:.0f} s: "
          f"{found['worst_under_limit']})")  # fmt: skip
    for j in found["jobs"]:
        print(f"  {j['kind']}: {j['started']} started, {j['finished']} finished, {j['stopped']} stopped "
              f"({j['stopped_scoring']} while scoring), "
              f"{j['refused']} refused; furthest {j['reached']:,} of {j['of']:,} {j['unit']}s")  # fmt: skip


if __name__ == "__main__":
    main()
