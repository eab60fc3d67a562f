"""A RewardBench-sized file (3,000 pairs) through `python -m armorm_ui evaluate` on the demo checkpoint, as a user
runs it: interrupted with Ctrl-C halfway, then resumed with the same command; then the report (accuracy, length
baselines, calibration with its temperature fit, weights fitted to the labels with the paired comparison)
recomputed from the written per-pair table alone, and timed.

    python benchmarks/bench_evaluate_file.py              # 3,000 pairs; writes bench_evaluate_file.json
    python benchmarks/bench_evaluate_file.py --pairs 500  # smaller

Prints the wall time of each run, the scoring rate, the report's time and its share of the whole run. The figures in
the README are benchmarks/evaluate_file_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from armorm_ui.backend import demo_checkpoint  # noqa: E402
from armorm_ui.evaluation import EXAMPLE_COUNTS, report  # noqa: E402

WORDS = ("the answer explains each step with care and names the sources it relies on so that a reader can check "
         "every claim it makes before acting on it").split()  # fmt: skip


def write_pairs(path: Path, n: int, seed: int = 0) -> None:
    """RewardBench's layout and subsets; prompts of 20-60 words, answers of 20-120."""
    rng = np.random.default_rng(seed)
    subsets = list(EXAMPLE_COUNTS)

    def text(lo, hi):
        return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi)))).capitalize() + "."

    with path.open("w", encoding="utf-8") as f:
        for k in range(n):
            row = {"id": k, "subset": subsets[k % len(subsets)], "prompt": text(20, 60), "chosen": text(20, 120),
                   "rejected": text(20, 120)}  # fmt: skip
            f.write(json.dumps(row) + "\n")


def lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f) - 1  # the header line
    except FileNotFoundError:
        return 0


def run(cmd, env, stop_at: int | None, partial: Path, deadline_s: float = 1800) -> tuple[float, int]:
    """Run the command; with stop_at, press Ctrl-C once that many pairs are saved. (seconds, exit code)."""
    start = time.perf_counter()
    log = tempfile.TemporaryFile("w+", encoding="utf-8")  # the progress bar's output, read only on failure
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=log, text=True)
    if stop_at is not None:
        while proc.poll() is None and lines(partial) < stop_at:
            if time.perf_counter() - start > deadline_s:
                proc.kill()
                raise SystemExit("the run did not reach the stop point in time")
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=deadline_s)
    if proc.returncode not in (0, 130):
        log.seek(0)
        raise SystemExit(f"evaluate failed ({proc.returncode}):\n{log.read()[-3000:]}")
    return time.perf_counter() - start, proc.returncode


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--json", default="bench_evaluate_file.json")
    args = ap.parse_args(argv)
    model = str(demo_checkpoint.ensure())
    folder = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    inp, out = folder / "pairs.jsonl", folder / "pairs-scored.csv"
    write_pairs(inp, args.pairs)
    partial = out.with_name(out.name + ".partial.jsonl")
    cmd = [
        sys.executable,
        "-m",
        "armorm_ui",
        "evaluate",
        str(inp),
        "-o",
        str(out),
        "--model",
        model,
        "--device",
        "cpu",
        "--max-rows",
        str(max(args.pairs, 5000)),
        "--flush-every",
        str(max(1, min(50, args.pairs // 20))),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first, code = run(cmd, env, args.pairs // 2, partial)
    saved = lines(partial)
    second = 0.0
    if code == 130:  # stopped halfway: the same command resumes
        second, code = run(cmd, env, None, partial)
    elif code == 0:  # a busy machine's poll came too late: the run finished first
        saved = None
    found = json.loads(out.with_name(out.stem + ".report.json").read_text())
    import pandas as pd

    frame = pd.read_csv(out)
    start = time.perf_counter()
    again = report(frame, found["meta"], found["layout"])
    report_s = time.perf_counter() - start
    same = again["overall"] == found["overall"] and again["ece"] == found["ece"]
    total = first + second
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "pairs": args.pairs,
              "interrupted_after_s": first, "saved_before_ctrl_c": saved, "resumed_s": second,
              "pairs_per_s": args.pairs / total, "report_s": report_s, "report_share": report_s / total,
              "report_same_as_the_run": same, "fit_error": again["fit"].get("error")}  # fmt: skip
    print(f"{args.pairs} pairs through `evaluate` on the demo checkpoint ({os.cpu_count()} CPUs)")
    if saved is None:
        print(f"  finished in {first:6.1f} s before Ctrl-C could be pressed")
    else:
        print(f"  Ctrl-C after {first:6.1f} s with {saved} pairs saved; resumed and finished in {second:6.1f} s")
    print(f"  {result['pairs_per_s']:.1f} pairs/s over both runs (start-up twice included)")
    print(f"  report from the table alone: {report_s * 1e3:.0f} ms ({result['report_share']:.1%} of the run; the "
          f"target is under 2 s); the same as the run's own: {same}")  # fmt: skip
    Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
