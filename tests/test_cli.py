"""The batch command line: a run killed half-way resumes and ends with the same output as an uninterrupted run;
the Ray engine gives the same output as the single process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_input(path: Path, n: int = 60) -> Path:
    rows = [{"item_id": f"q{i}", "prompt": f"Question number {i}: " + "why? " * (i % 7),
             "response_1": "Because. " * (1 + i % 5), "response_2": f"It depends on {i}.", "response_3": "No."}
            for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_cli(inp, out, demo_dir, *extra, **popen):
    cmd = [sys.executable, "-m", "armorm_ui", "score", str(inp), "-o", str(out), "--model", str(demo_dir),
           "--device", "cpu", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_interrupted_run_resumes_to_the_same_output(tmp_path, demo_dir):
    inp = make_input(tmp_path / "items.csv")
    full = tmp_path / "full.csv"
    proc = run_cli(inp, full, demo_dir)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()

    out = tmp_path / "resumed.csv"
    partial = tmp_path / "resumed.csv.partial.jsonl"
    proc = run_cli(inp, out, demo_dir)
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 6):  # header + 5 items
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    scored_before = partial.read_text().count("\n") - 1
    assert 5 <= scored_before < 60 and not out.exists()

    proc = run_cli(inp, out, demo_dir)
    assert proc.wait(timeout=300) == 0
    err = proc.stderr.read()
    assert f"resuming: {scored_before} of 60 items already scored" in err or "resuming:" in err
    assert not partial.exists()
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(full))


def test_partial_file_of_another_input_is_refused(tmp_path, demo_dir):
    inp = make_input(tmp_path / "items.csv", n=3)
    out = tmp_path / "out.csv"
    (tmp_path / "out.csv.partial.jsonl").write_text('{"input_sha256": "something else"}\n')
    proc = run_cli(inp, out, demo_dir)
    assert proc.wait(timeout=120) == 2
    assert "belongs to another input file" in proc.stderr.read()


@pytest.mark.ray
def test_ray_engine_matches_single_process(tmp_path, demo_dir):
    inp = make_input(tmp_path / "items.csv", n=12)
    single, distributed = tmp_path / "single.parquet", tmp_path / "ray.parquet"
    assert run_cli(inp, single, demo_dir).wait(timeout=300) == 0
    proc = run_cli(inp, distributed, demo_dir, "--engine", "ray", "--workers", "2")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(distributed), pd.read_parquet(single))
