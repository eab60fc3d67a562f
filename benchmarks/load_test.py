"""Load test on loopback: concurrent gradio_client users against the app on the demo checkpoint.

    python benchmarks/load_test.py --users 16 --requests 5 --queue-size 8 --cancel-rate 0.25

Starts app.py in a subprocess (its own port, a small queue), runs `users` threads that each send `requests` /score
calls of varying size, --rounds times, and reports: requests, results, refusals (queue full, limits) and failures;
p50/p99 latency of answered calls; the server's resident memory after a warm-up and after each round. Every call must
end with a result or a clear refusal within --timeout seconds: a hung call is a failure. With --cancel-rate, that
share of the calls is cancelled by its client after a random wait, and a tenth of those are whole batch files
(/score_file) cancelled mid-run; the server's log is read for the scorer's own count of model calls at once, which
must never pass one. Figures go to benchmarks/load_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(queue_size: int, model: str | None = None, sessions: int = 1000, log: Path | None = None):
    """app.py in a subprocess on a free port: (process, url). Its output goes to `log` when given."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "ARMORM_QUEUE_SIZE": str(queue_size),
           "ARMORM_SESSIONS": str(sessions),
           "ARMORM_DEVICE": "cpu", "ARMORM_DATA_DIR": tempfile.mkdtemp(prefix="armorm-load-")}  # fmt: skip
    if model:
        env["ARMORM_MODEL"] = model
    out = open(log, "w") if log else subprocess.DEVNULL  # the child keeps it open
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the app exited during start-up") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start in 120 s")


def request(rng: random.Random) -> tuple[list, list]:
    words = "the model answer because code list helpful safe therefore example".split()
    n = rng.randint(1, 8)
    cands = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 300))) for _ in range(n)]
    if rng.random() < 0.1:
        cands.append("")  # a bad request: must be refused clearly
    return [{"role": "user", "content": " ".join(rng.choice(words) for _ in range(rng.randint(5, 100)))}], cands


def batch_file(rows: int = 200) -> str:
    """A CSV of `rows` items, long enough that a cancel lands mid-run."""
    path = Path(tempfile.mkdtemp(prefix="armorm-load-")) / "items.csv"
    lines = ["prompt,response_1,response_2"] + [f"Question {i}?,Answer {i} because reasons.,No." for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def run(url: str, users: int, requests: int, timeout: float, seed: int = 0, cancel_rate: float = 0.0,
        batch_share: float = 0.1) -> dict:  # fmt: skip
    """`users` clients in threads; of the cancelled calls, `batch_share` are batch files."""
    from gradio_client import handle_file

    outcomes, lock = [], threading.Lock()
    batch = batch_file() if cancel_rate else None

    def user(i: int) -> None:
        rng = random.Random(seed + i)
        client = Client(url, verbose=False)
        for _ in range(requests):
            messages, cands = request(rng)
            t = time.perf_counter()
            cancel = rng.random() < cancel_rate
            if cancel and rng.random() < batch_share:
                job = client.submit(handle_file(batch), "CSV", api_name="/score_file")
            else:
                job = client.submit(messages, cands, api_name="/score")
            if cancel:
                time.sleep(rng.uniform(0.05, 0.5))
                job.cancel()
                with lock:
                    outcomes.append({"kind": "cancelled", "seconds": time.perf_counter() - t, "detail": ""})
                continue
            try:
                out = job.result(timeout=timeout)
                kind, detail = ("result" if len(out["scores"]) == len(cands) else "wrong"), ""
            except TimeoutError:
                kind, detail = "hung", f"no answer in {timeout} s"
            except Exception as e:  # the refusal's message is what a user sees
                detail = str(e)
                kind = "refused" if detail and ("queue" in detail.lower() or "empty" in detail.lower()) else "failed"
            with lock:
                outcomes.append({"kind": kind, "seconds": time.perf_counter() - t, "detail": detail[:200]})

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"outcomes": outcomes}


def summarise(outcomes: list[dict]) -> dict:
    answered = sorted(o["seconds"] for o in outcomes if o["kind"] == "result")

    def pct(p):
        return answered[min(len(answered) - 1, int(p * len(answered)))] if answered else float("nan")

    kinds = {k: sum(o["kind"] == k for o in outcomes) for k in ("result", "refused", "cancelled", "failed", "hung",
                                                                 "wrong")}  # fmt: skip
    refusals = sorted({o["detail"] for o in outcomes if o["kind"] == "refused"})
    return {"requests": len(outcomes), **kinds, "p50_s": statistics.median(answered) if answered else None,
            "p99_s": pct(0.99), "refusal_messages": refusals[:5],
            "failures": [o["detail"] for o in outcomes if o["kind"] in ("failed", "wrong")][:5]}  # fmt: skip


def overlaps(log: Path) -> list[int]:
    """The scorer's own reports of more than one model call at once (scoring.Scorer._hold), from the server log."""
    return [int(m) for m in re.findall(r"model slot: (\d+) calls at once", log.read_text(errors="replace"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="repeat the load; memory is read after each round")
    ap.add_argument("--sessions", type=int, default=1000, help="the app's ARMORM_SESSIONS")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--cancel-rate", type=float, default=0.25, help="share of calls cancelled by their client")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the demo checkpoint)")
    ap.add_argument("--json", default="benchmarks/load_results.json")
    args = ap.parse_args(argv)
    log = Path(tempfile.mkdtemp(prefix="armorm-load-")) / "server.log"
    proc, url = start_app(args.queue_size, args.model, args.sessions, log)
    try:
        server = psutil.Process(proc.pid)
        run(url, 2, 1, args.timeout, seed=999)  # warm-up
        rss = [server.memory_info().rss / 2**20]
        t = time.perf_counter()
        outcomes = []
        for r in range(args.rounds):  # memory after each round: flat means no growth from round to round
            outcomes += run(url, args.users, args.requests, args.timeout, 1000 * r, args.cancel_rate)["outcomes"]
            rss.append(server.memory_info().rss / 2**20)
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = {**summarise(outcomes), "users": args.users, "rounds": args.rounds, "queue_size": args.queue_size,
               "cancel_rate": args.cancel_rate, "most_model_calls_at_once": max([1, *overlaps(log)]),
               "wall_s": wall, "rss_mb_after_warmup_and_each_round": [round(x, 1) for x in rss]}  # fmt: skip
    print(json.dumps(summary, indent=2))
    Path(args.json).write_text(json.dumps(summary, indent=2))
    ok = summary["failed"] == summary["hung"] == summary["wrong"] == 0 and summary["most_model_calls_at_once"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
