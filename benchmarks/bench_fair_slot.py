"""How long an interactive request waits for the model while long jobs run: the fair model slot, measured.

    python benchmarks/bench_fair_slot.py --rows 5000 --seconds 60

Starts app.py on the demo checkpoint (loopback), then a probe visitor sends a two-candidate /score every second:
first alone (the idle baseline), then beside two visitors each running a `--rows`-item batch file (the path an
evaluation takes too: Scorer.score_many) and a third visitor who starts batches and stops them every few seconds.
Reports the probe's median and worst time per call in both phases and their ratio (side by side, one run); a job
that finishes is started again, so the load lasts the whole phase. Figures go to benchmarks/fair_slot_results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_test  # noqa: E402

CONVERSATION = [{"role": "user", "content": "Is the sky blue?"}]


def probe(url: str, seconds: float) -> list[float]:
    """A /score every second for `seconds`: the time of each call."""
    client, waits, end = Client(url, verbose=False), [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        client.predict(CONVERSATION, ["Yes, on a clear day.", "No."], api_name="/score")
        waits.append(time.monotonic() - start)
        time.sleep(max(0.0, 1.0 - waits[-1]))
    return waits


def keep_busy(url: str, batch: str, stop: threading.Event, cancel_after: float | None = None) -> int:
    """One visitor's batch files, one after another until `stop`; each stopped after `cancel_after` s if given."""
    client, started = Client(url, verbose=False), 0
    while not stop.is_set():
        job = client.submit(handle_file(batch), "CSV", api_name="/score_file")
        started += 1
        deadline = time.monotonic() + (cancel_after or 1e9)
        while not job.done() and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not job.done():
            job.cancel()
            load_test.wait_for(job.done, timeout=60)
    return started


def summary(waits: list[float]) -> dict:
    return {"calls": len(waits), "median_s": statistics.median(waits), "worst_s": max(waits)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5000, help="items per batch file")
    ap.add_argument("--seconds", type=float, default=60, help="length of each phase")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the demo checkpoint)")
    ap.add_argument("--json", default="benchmarks/fair_slot_results.json")
    args = ap.parse_args(argv)
    rows = [{"prompt": f"Question {i}: why is it so?", "response_1": "Because " * 20, "response_2": f"No {i}."}
            for i in range(args.rows)]  # fmt: skip
    batch = str(Path(tempfile.mkdtemp(prefix="armorm-fair-")) / "batch.csv")
    pd.DataFrame(rows).to_csv(batch, index=False)
    proc, url = load_test.start_app(queue_size=16, model=args.model)
    try:
        probe(url, 5)  # warm-up
        idle = probe(url, args.seconds)
        stop = threading.Event()
        jobs = [threading.Thread(target=keep_busy, args=(url, batch, stop), daemon=True) for _ in range(2)]
        jobs.append(threading.Thread(target=keep_busy, args=(url, batch, stop, 3.0), daemon=True))
        for t in jobs:
            t.start()
        time.sleep(5)  # the jobs' files are read and their items are being scored
        busy = probe(url, args.seconds)
        stop.set()
        for t in jobs:
            t.join(timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    found = {"rows": args.rows, "seconds": args.seconds, "idle": summary(idle), "beside_jobs": summary(busy)}
    found["worst_ratio"] = found["beside_jobs"]["worst_s"] / found["idle"]["worst_s"]
    print(f"/score alone:             median {found['idle']['median_s']:.3f} s, worst {found['idle']['worst_s']:.3f} s")
    print(f"/score beside three jobs: median {found['beside_jobs']['median_s']:.3f} s, "
          f"worst {found['beside_jobs']['worst_s']:.3f} s ({found['worst_ratio']:.1f}x the idle worst)")  # fmt: skip
    Path(args.json).write_text(json.dumps(found, indent=1) + "\n")
    return found


if __name__ == "__main__":
    main()
