"""The batch command line: a run killed half-way (kill -9 or Ctrl-C) resumes and ends with the same output as an
uninterrupted run; what it would refuse later is refused before the model loads; the Ray engine gives the same output
as the single process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_input(path: Path, n: int = 60) -> Path:
    rows = [{"item_id": f"q{i}", "prompt": f"Question number {i}: " + "why? " * (i % 7),
             "response_1": "Because. " * (1 + i % 5), "response_2": f"It depends on {i}.", "response_3": "No."}
            for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_cli(inp, out, demo_dir, *extra, command="score", **popen):
    """python -m armorm_ui COMMAND [IN] -o OUT on the demo checkpoint, in a subprocess."""
    cmd = [sys.executable, "-m", "armorm_ui", command, *([str(inp)] if inp else []), "-o", str(out), "--model",
           str(demo_dir), "--device", "cpu", *extra]  # fmt: skip
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
@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_ray_engine_gives_the_single_process_output(tmp_path, demo_dir, command):
    if command == "score":
        inp = make_input(tmp_path / "items.csv", n=12)
    else:
        inp = make_pairs(tmp_path / "pairs.jsonl", n=8)
    single, distributed = tmp_path / "single.parquet", tmp_path / "ray.parquet"
    assert run_cli(inp, single, demo_dir, command=command).wait(timeout=300) == 0
    proc = run_cli(inp, distributed, demo_dir, "--engine", "ray", "--workers", "2", command=command)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(distributed), pd.read_parquet(single), atol=1e-6)
    if command == "evaluate":
        mine, theirs = (json.loads((tmp_path / f"{n}.report.json").read_text()) for n in ("single", "ray"))
        assert mine["overall"] == theirs["overall"] and mine["subsets"] == theirs["subsets"]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model is loaded: these refusals must come before it."""
    from armorm_ui.config import AppConfig

    def refuse(self):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(AppConfig, "load_scorer", refuse)


def cli_main(*argv) -> int:
    from armorm_ui.cli import main

    return main(["score", *map(str, argv), "--device", "cpu"])


@pytest.mark.parametrize(
    "output, match",
    [
        ("items.csv", "is the input file"),
        ("out.txt", "unknown file type .txt"),
        ("missing/out.csv", "does not exist"),
        ("items.csv/out.csv", "does not exist"),
    ],
)
def test_refused_before_the_model_loads(tmp_path, no_model, capsys, output, match):
    inp = make_input(tmp_path / "items.csv", n=2)
    before = inp.read_bytes()
    assert cli_main(inp, "-o", tmp_path / output) == 2
    assert match in capsys.readouterr().err
    assert inp.read_bytes() == before


def test_unwritable_folder_is_refused_before_the_model_loads(tmp_path, no_model, capsys, monkeypatch):
    inp = make_input(tmp_path / "items.csv", n=2)
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("ro") else real(p, mode))
    assert cli_main(inp, "-o", tmp_path / "ro" / "out.csv") == 2  # (root writes anywhere; the check is what counts)
    assert "is not writable" in capsys.readouterr().err


def partial_of(tmp_path, n: int, demo_dir, *extra) -> tuple[Path, Path, Path]:
    """A run killed after its first item: (input, output, partial file)."""
    inp = make_input(tmp_path / "items.csv", n=n)
    out = tmp_path / "out.csv"
    proc = run_cli(inp, out, demo_dir, *extra)
    partial = tmp_path / "out.csv.partial.jsonl"
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return inp, out, partial


def test_resuming_with_other_options_is_refused_before_scoring(tmp_path, demo_dir, no_model, capsys):
    inp = make_input(tmp_path / "items.csv", n=3)
    out = tmp_path / "out.csv"
    from armorm_ui.batch import file_digest

    header = {"input_sha256": file_digest(inp), "input": "items.csv", "model": str(demo_dir), "revision": "",
              "device": "cpu", "dtype": "", "attribute": False}  # fmt: skip
    (tmp_path / "out.csv.partial.jsonl").write_text(json.dumps(header) + "\n")
    assert cli_main(inp, "-o", out, "--model", tmp_path / "another-model") == 2
    assert "was scored with model" in capsys.readouterr().err
    assert cli_main(inp, "-o", out, "--model", demo_dir, "--attribute") == 2
    assert "attribute False; this run has attribute True" in capsys.readouterr().err
    assert cli_main(inp, "-o", out, "--model", demo_dir, "--dtype", "bfloat16") == 2
    assert "dtype ''; this run has dtype 'bfloat16'" in capsys.readouterr().err


def test_a_damaged_partial_file_is_recovered_or_reported(tmp_path, demo_dir, capsys):
    inp, out, partial = partial_of(tmp_path, 8, demo_dir)
    full = tmp_path / "full.csv"
    assert cli_main(inp, "-o", full, "--model", demo_dir) == 0
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join([lines[0], "{not json", '{"item_id": "nope", "result": {}}', *lines[1:]]) + '\n{"ite')
    assert cli_main(inp, "-o", out, "--model", demo_dir) == 0
    err = capsys.readouterr().err
    assert "3 damaged line(s) dropped" in err and "resuming:" in err
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(full))

    partial.write_text("garbage\n")
    assert cli_main(inp, "-o", tmp_path / "again.csv", "--model", demo_dir) == 0  # another output: no partial
    (tmp_path / "third.csv.partial.jsonl").write_text("garbage\n")
    assert cli_main(inp, "-o", tmp_path / "third.csv", "--model", demo_dir) == 2
    assert "is damaged or not a partial results file" in capsys.readouterr().err


def test_ctrl_c_saves_and_resumes(tmp_path, demo_dir):
    inp = make_input(tmp_path / "items.csv", n=60)
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial.jsonl"
    proc = run_cli(inp, out, demo_dir)
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 4):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read()
    assert "interrupted:" in err and "run the same command again to resume" in err and "Traceback" not in err
    proc = run_cli(inp, out, demo_dir)
    assert proc.wait(timeout=300) == 0 and "resuming:" in proc.stderr.read()
    assert len(pd.read_csv(out)) == 180


def test_settings_come_from_the_environment(tmp_path, demo_dir, monkeypatch, capsys):
    inp = make_input(tmp_path / "items.csv", n=2)
    monkeypatch.setenv("ARMORM_MAX_CHARS", "5")
    assert cli_main(inp, "-o", tmp_path / "out.csv", "--model", demo_dir) == 2
    assert "the limit is 5" in capsys.readouterr().err
    monkeypatch.delenv("ARMORM_MAX_CHARS")
    monkeypatch.setenv("ARMORM_MAX_TOKENS", "12")
    assert cli_main(inp, "-o", tmp_path / "out.csv", "--model", demo_dir) == 2
    assert "the limit is 12" in capsys.readouterr().err


def test_many_candidates_are_labelled_past_z(tmp_path, demo_dir):
    inp = tmp_path / "wide.csv"
    pd.DataFrame([{"prompt": "Pick one.", **{f"response_{k + 1}": f"Answer {k}." for k in range(27)}}]).to_csv(
        inp, index=False
    )
    out = tmp_path / "out.csv"
    assert cli_main(inp, "-o", out, "--model", demo_dir) == 2  # the cap: 16 by default
    assert cli_main(inp, "-o", out, "--model", demo_dir, "--max-candidates", "30") == 0
    assert pd.read_csv(out)["candidate"].tolist()[-2:] == ["Z", "AA"]


HEADER = {"input_sha256": "abc", "input": "items.csv", "model": "m", "revision": "", "device": "cpu", "dtype": "",
          "attribute": False}  # fmt: skip


def test_any_partial_file_resumes_or_is_refused_clearly(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from armorm_ui.cli import load_partial
    from armorm_ui.errors import InputError

    good_row = json.dumps({"item_id": "q1", "result": {"scores": [0.1], "rewards": [[0.0] * 19],
                                                        "gating_output": [0.0] * 19, "coefficients": [0.0] * 19,
                                                        "reward_transform_matrix": [[0.0] * 19] * 19}})  # fmt: skip
    keys = st.sampled_from(["item_id", "result", "attribution", "input_sha256"])
    values = st.none() | st.integers() | st.text(max_size=5) | st.just("q1")
    line = (st.text(max_size=40) | st.just(json.dumps(HEADER)) | st.just(good_row)
            | st.dictionaries(keys, values, max_size=4).map(json.dumps))  # fmt: skip

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lines=st.lists(line, max_size=6), raw=st.binary(max_size=60), torn=st.booleans())
    def check(lines, raw, torn):
        path = tmp_path / "out.csv.partial.jsonl"
        path.write_bytes(("\n".join(lines) + ("" if torn else "\n")).encode("utf-8", "surrogatepass") + raw)
        try:
            done = load_partial(path, HEADER, {"q1", "q2"})
        except InputError as e:
            assert str(e)
            return
        assert set(done) <= {"q1", "q2"}
        assert path.read_bytes()[-1:] in (b"", b"\n")  # ready for the next row (or the header) to be appended
        assert load_partial(path, HEADER, {"q1", "q2"}).keys() == done.keys()  # and reads back the same

    check()


def make_pairs(path: Path, n: int = 40) -> Path:
    subsets = ["alpacaeval-easy", "mt-bench-hard", "hep-go", "donotanswer"]
    rows = [{"id": f"p{i}", "subset": subsets[i % 4], "prompt": f"Question {i}: " + "why? " * (i % 5),
             "chosen": "Because of this. " * (1 + i % 4), "rejected": f"It depends on {i}."}
            for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    return path


def run_evaluate(inp, out, demo_dir, *extra):
    return run_cli(inp, out, demo_dir, *extra, command="evaluate")


def test_evaluate_resumes_to_the_same_report(tmp_path, demo_dir, scorer):
    inp = make_pairs(tmp_path / "pairs.jsonl")
    full = tmp_path / "full.csv"
    proc = run_evaluate(inp, full, demo_dir)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert "accuracy" in proc.stderr.read()

    out, partial = tmp_path / "resumed.csv", tmp_path / "resumed.csv.partial.jsonl"
    proc = run_evaluate(inp, out, demo_dir)
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 4):
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists() and not (tmp_path / "resumed.report.json").exists()
    proc = run_evaluate(inp, out, demo_dir)
    assert proc.wait(timeout=300) == 0 and "resuming:" in proc.stderr.read()
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(full))
    report = json.loads((tmp_path / "resumed.report.json").read_text())
    assert report == json.loads((tmp_path / "full.report.json").read_text())
    # the per-pair scores are the API's for the same pairs
    table = pd.read_csv(full).set_index("pair_id")
    first = pd.read_json(inp, lines=True).iloc[0]
    api = scorer.score([{"role": "user", "content": first["prompt"]}], [first["chosen"], first["rejected"]])
    np.testing.assert_allclose(table.loc["p0", ["score_chosen", "score_rejected"]].to_numpy(float), api.scores,
                               atol=1e-6)  # fmt: skip
    assert report["pairs"] == 40 and set(report["rewardbench"]["sections"]) == {"Chat", "Chat Hard", "Safety",
                                                                                "Reasoning"}  # fmt: skip


def test_evaluate_a_saved_data_set_and_refusals(tmp_path, demo_dir):
    import datasets

    rows = pd.read_json(make_pairs(tmp_path / "pairs.jsonl", n=6), lines=True).to_dict(orient="records")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "eval.parquet"
    proc = run_evaluate(None, out, demo_dir, "--dataset", str(tmp_path / "saved"), "--sample", "4")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert len(pd.read_parquet(out)) == 4 and (tmp_path / "eval.report.json").exists()
    proc = run_evaluate(tmp_path / "pairs.jsonl", out, demo_dir, "--dataset", "x")
    assert proc.wait(timeout=60) == 2 and "not both" in proc.stderr.read()
