"""The app's own costs, on loopback with the demo checkpoint: time from start to the first page, and what /score
costs through the HTTP API (gradio_client) over the same call in the process.

    python benchmarks/bench_app.py --starts 3 --calls 40

Starts app.py `--starts` times (each a fresh process, its own port) and times the first HTTP 200 of the page; then,
on the last one, sends the same /score request `--calls` times through gradio_client and through a scorer loaded in
this process, interleaved, and prints the medians and their difference (the app's overhead per request). The
request repeats, so both sides answer from the scorer's result cache: what is left is everything around the model.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONVERSATION = [{"role": "user", "content": 'What are some synonyms for the word "beautiful"?'}]
CANDIDATES = ["Nicely, Beautifully, Handsome, Stunning, Wonderful, Gorgeous, Pretty, Stunning, Elegant",
              "Sorry i cannot answer this."]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, data: str) -> tuple[subprocess.Popen, str, float]:
    """Start app.py; return the process, its URL and the seconds until the page answered."""
    port = free_port()
    env = {**os.environ, "ARMORM_MODEL": model, "GRADIO_SERVER_PORT": str(port), "ARMORM_DEVICE": "cpu",
           "ARMORM_DATA_DIR": data, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc, url, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the app did not start") from None
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args(argv)

    from gradio_client import Client

    from armorm_ui import load_scorer
    from armorm_ui.backend import demo_checkpoint

    model = str(demo_checkpoint.ensure())
    data = tempfile.mkdtemp(prefix="armorm-bench-")
    first_page = []
    for i in range(args.starts):
        proc, url, seconds = start(model, data)
        first_page.append(seconds)
        if i < args.starts - 1:
            proc.terminate()
            proc.wait(30)
    try:
        client = Client(url, verbose=False)
        scorer = load_scorer(model, device="cpu")
        api, direct = [], []
        for _ in range(3):  # warm both
            client.predict(CONVERSATION, CANDIDATES, api_name="/score")
            scorer.score(CONVERSATION, CANDIDATES)
        for _ in range(args.calls):
            t = time.perf_counter()
            client.predict(CONVERSATION, CANDIDATES, api_name="/score")
            api.append(time.perf_counter() - t)
            t = time.perf_counter()
            scorer.score(CONVERSATION, CANDIDATES)
            direct.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(30)
    out = {"first_page_s": first_page, "api_ms": 1e3 * statistics.median(api),
           "direct_ms": 1e3 * statistics.median(direct), "cpus": os.cpu_count()}  # fmt: skip
    out["overhead_ms"] = out["api_ms"] - out["direct_ms"]
    print(f"first page: {', '.join(f'{s:.2f}' for s in first_page)} s (median {statistics.median(first_page):.2f} s)")
    print(f"/score through gradio_client {out['api_ms']:.1f} ms, in the process {out['direct_ms']:.2f} ms: "
          f"overhead {out['overhead_ms']:.1f} ms per request (medians of {args.calls})")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
