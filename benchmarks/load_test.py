"""Load test on loopback: concurrent gradio_client users against the app on the demo checkpoint.

    python benchmarks/load_test.py --users 16 --requests 5 --queue-size 8 --cancel-rate 0.25

Starts app.py in a subprocess (its own port, a small queue), runs `users` threads that each send `requests` /score
calls of varying size, --rounds times, and reports: requests, results, refusals (queue full, limits) and failures;
p50/p99 latency of answered calls; the server's resident memory after a warm-up and after each round. Every call must
end with a result or a clear refusal within --timeout seconds: a hung call is a failure. With --cancel-rate, that
share of the calls is cancelled by its client a random wait after the server queued it, and a tenth of those are
whole batch files (/score_file) cancelled mid-run; the server's log is read for the scorer's own count of model calls
at once, which must never pass one. Figures go to benchmarks/load_results.json.

    python benchmarks/load_test.py --total 10000 --cancel-rate 0 --json benchmarks/load_10k_results.json

With --total, one long load instead of rounds: `total` calls (within --max-seconds), the server's resident memory
and thread count read every --every calls, when the load ends and after --idle-s seconds of idle (the app tidies
its sessions and returns freed memory once a minute); memory must reach a plateau and threads their baseline.
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


def connect(url: str) -> Client:
    return Client(url, verbose=False, analytics_enabled=False)  # loopback only: no telemetry calls out


def stream_read(client: Client) -> bool:
    """Whether the client has read the end of its event stream: gradio_client's own flag, cleared when its reader
    reads the server's close_stream (gradio_client/client.py, stream_messages); True where a version lacks it."""
    return not getattr(client, "stream_open", False)


def wait_for(condition, timeout: float, every: float = 0.01) -> bool:
    """Whether `condition()` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def describe(e: BaseException) -> str:
    """An exception as a failure report: its type, its message (some have none) and where it was raised."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    where = f" (raised at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(e).__module__}.{type(e).__qualname__}: {str(e) or '(no message)'}{where}"


def run(url: str, users: int, requests: int, timeout: float, seed: int = 0, cancel_rate: float = 0.0,
        batch_share: float = 0.1, cancel_after: tuple[float, float] = (0.05, 0.5), deadline: float | None = None,
        on_outcome=None) -> dict:  # fmt: skip
    """`users` clients in threads; of the cancelled calls, `batch_share` are batch files, each cancelled a random
    `cancel_after` seconds (low, high) after the server queued it. No call starts after `deadline` (time.monotonic);
    `on_outcome(n)` is called with the count of outcomes after each (from the users' threads, one at a time).

    Each user submits a call only once its Client has read all the server sent about the previous one. A Client
    reads every call's messages from one event stream, which the server ends as soon as the session has nothing
    pending (gradio/routes.py, queue_data_helper: close_stream): after a call's completion, and after a cancel once
    it has sent the cancelled call's completion. A call submitted before the client's reader thread has read that
    close is filed under the closing stream, handed None when it closes, and ends in a bare CancelledError from the
    client itself (gradio_client/utils.py, stream_sse_v1plus), a call the server never failed; on a busy machine,
    where the reader thread is slow to run, that happens. So after a call the user waits (with a deadline) for its
    Client to have read the end of the stream; after a cancel, or when the stream does not end, it goes on with a
    fresh Client (a new session and event stream).
    """
    from gradio_client import handle_file

    outcomes, lock = [], threading.Lock()

    def record(outcome: dict) -> None:  # under `lock`
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(len(outcomes))

    batch = batch_file() if cancel_rate else None

    def user(i: int) -> None:
        rng = random.Random(seed + i)
        client = None
        for _ in range(requests):
            if deadline is not None and time.monotonic() > deadline:
                break
            messages, cands = request(rng)
            t = time.perf_counter()
            cancel = rng.random() < cancel_rate
            whole_file = cancel and rng.random() < batch_share
            try:
                client = connect(url) if client is None else client
            except Exception as e:  # the app did not answer a new visitor: a failure of this call
                with lock:
                    record({"kind": "failed", "seconds": time.perf_counter() - t,
                                     "detail": f"connecting: {describe(e)}"[:600]})  # fmt: skip
                continue
            if whole_file:
                job = client.submit(handle_file(batch), "CSV", api_name="/score_file")
            else:
                job = client.submit(messages, cands, api_name="/score")
            if cancel:
                # Stop is pressed on a call the server holds: a cancel sent before the client knows the call's event
                # id cannot take it off the queue (gradio/routes.py cancel_event), and it would run to its end.
                if not wait_for(lambda job=job: job.communicator.event_id is not None or job.done(), timeout):
                    with lock:
                        record({"kind": "hung", "seconds": time.perf_counter() - t,
                                         "detail": f"not queued in {timeout} s"})  # fmt: skip
                    client = None
                    continue
                time.sleep(rng.uniform(*cancel_after))  # when the user presses Stop: timing, not a wait for anything
                job.cancel()
                client = None  # not reused after a cancel (docstring)
                with lock:
                    record({"kind": "cancelled", "seconds": time.perf_counter() - t, "detail": ""})
                continue
            try:
                out = job.result(timeout=timeout)
                kind, detail = ("result" if len(out["scores"]) == len(cands) else "wrong"), ""
                if kind == "wrong":
                    detail = f"{len(out['scores'])} scores for {len(cands)} candidates"
            except TimeoutError:
                kind, detail = "hung", f"no answer in {timeout} s"
            except Exception as e:  # the refusal's message is what a user sees
                message = str(e)
                refused = message and ("queue" in message.lower() or "empty" in message.lower())
                kind, detail = ("refused", message[:200]) if refused else ("failed", describe(e)[:600])
            with lock:
                record({"kind": kind, "seconds": time.perf_counter() - t, "detail": detail})
            if not wait_for(lambda client=client: stream_read(client), 10):
                client = None  # the stream did not end (a hung call): not reused (docstring)

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
            "failures": [f"{o['kind']}: {o['detail']}" for o in outcomes if o["kind"] in ("failed", "hung",
                                                                                         "wrong")][:5]}  # fmt: skip


def report(summary: dict) -> str:
    """A summary as an assertion message: the counts, then each failing outcome's details in full, one a line."""
    counts = ", ".join(f"{k}={summary[k]}" for k in ("requests", "result", "refused", "cancelled", "failed", "hung",
                                                      "wrong"))  # fmt: skip
    failures = "".join(f"\n  {f}" for f in summary["failures"]) or " none"
    refusals = "".join(f"\n  {m}" for m in summary["refusal_messages"]) or " none"
    return f"{counts}\nfailing outcomes (first 5):{failures}\nrefusal messages:{refusals}"


def overlaps(log: Path) -> list[int]:
    """The scorer's own reports of more than one model call at once (scoring.Scorer._hold), from the server log."""
    return [int(m) for m in re.findall(r"model slot: (\d+) calls at once", log.read_text(errors="replace"))]


def reading(server: psutil.Process, requests: int, start: float) -> dict:
    """The server's resident memory (MB) and threads now, after `requests` calls."""
    return {"requests": requests, "seconds": round(time.perf_counter() - start, 1),
            "rss_mb": round(server.memory_info().rss / 2**20, 1), "threads": server.num_threads()}  # fmt: skip


def long_load(url: str, server: psutil.Process, args) -> tuple[list[dict], dict]:
    """`args.total` calls from `args.users` users, memory and threads read every `args.every` calls, at the end
    and after `args.idle_s` idle seconds: (outcomes, figures)."""
    start = time.perf_counter()
    baseline = reading(server, 0, start)
    readings = [baseline]

    def every(n: int) -> None:
        if n % args.every == 0:
            readings.append(reading(server, n, start))

    deadline = time.monotonic() + args.max_seconds
    per_user = -(-args.total // args.users)
    outcomes = run(url, args.users, per_user, args.timeout, 0, args.cancel_rate, deadline=deadline,
                   on_outcome=every)["outcomes"]  # fmt: skip
    end = reading(server, len(outcomes), start)
    time.sleep(args.idle_s)
    idle = reading(server, len(outcomes), start)
    half = [r for r in readings if r["requests"] >= len(outcomes) / 2]
    figures = {"baseline": baseline, "every": readings[1:], "end_of_load": end, f"after_{args.idle_s:g}_s_idle": idle,
               "rss_growth_mb_second_half": round(readings[-1]["rss_mb"] - half[0]["rss_mb"], 1) if half else None,
               "threads_back_to_baseline": idle["threads"] <= baseline["threads"]}  # fmt: skip
    return outcomes, figures


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
    ap.add_argument("--total", type=int, default=0, help="one long load of this many calls instead of rounds")
    ap.add_argument("--every", type=int, default=500, help="with --total: read memory every this many calls")
    ap.add_argument("--max-seconds", type=float, default=3600, help="with --total: no call starts after this")
    ap.add_argument("--idle-s", type=float, default=75, help="with --total: idle seconds before the last reading")
    args = ap.parse_args(argv)
    log = Path(tempfile.mkdtemp(prefix="armorm-load-")) / "server.log"
    proc, url = start_app(args.queue_size, args.model, args.sessions, log)
    try:
        server = psutil.Process(proc.pid)
        run(url, 2, 1, args.timeout, seed=999)  # warm-up
        if args.total:
            t = time.perf_counter()
            outcomes, figures = long_load(url, server, args)
            return finish(args, outcomes, time.perf_counter() - t, log, figures)
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
    return finish(args, outcomes, wall, log, {"rss_mb_after_warmup_and_each_round": [round(x, 1) for x in rss]})


def finish(args, outcomes: list[dict], wall: float, log: Path, figures: dict) -> int:
    """Summary and `figures` to the terminal and args.json; 0 when no call failed and the model ran one at a time."""
    summary = {**summarise(outcomes), "users": args.users, "rounds": 1 if args.total else args.rounds,
               "queue_size": args.queue_size, "cancel_rate": args.cancel_rate,
               "most_model_calls_at_once": max([1, *overlaps(log)]), "wall_s": wall, **figures}  # fmt: skip
    print(json.dumps(summary, indent=2))
    Path(args.json).write_text(json.dumps(summary, indent=2))
    ok = summary["failed"] == summary["hung"] == summary["wrong"] == 0 and summary["most_model_calls_at_once"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
