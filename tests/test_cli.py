"""The batch command line: a run killed half-way (kill -9, at any moment, or Ctrl-C) resumes and ends with the same
output as an uninterrupted run, and a kill loses at most the batch not yet written; what it would refuse later is
refused before the model loads, which is reached without importing the web app, pandas, scipy or the model's
libraries; the Ray engine gives the same output as the single process.

Interruptions are placed by events, never by sleeping: the CLI's test hooks (cli.py's docstring) kill the process
after a given item, or hold it after one until the test interrupts it, so a loaded machine changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


HOOKS = ("ARMORM_CLI_TEST_KILL_AFTER", "ARMORM_CLI_TEST_PAUSE_AFTER")
WAIT = 300
"""Seconds a test waits for an event (the model loading on a loaded machine), polling, before it fails."""


def run_cli(inp, out, demo_dir, *extra, command="score", hooks: dict | None = None, **popen):
    """python -m armorm_ui COMMAND [IN] -o OUT on the demo checkpoint, in a subprocess (hooks: cli.py's test hooks)."""
    cmd = [sys.executable, "-m", "armorm_ui", command, *([str(inp)] if inp else []), "-o", str(out), "--model",
           str(demo_dir), "--device", "cpu", *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in HOOKS}
    env.update({"PYTHONPATH": str(ROOT), **(hooks or {})})
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(condition, proc, what: str) -> None:
    """Poll until condition() holds, failing if the process ends first or WAIT seconds pass."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {WAIT} s"
        time.sleep(0.02)


def saved_rows(partial: Path) -> list[str]:
    """The item ids of the whole, readable rows of a partial file (after its header)."""
    ids = []
    for line in partial.read_text(errors="replace").splitlines()[1:]:
        try:
            ids.append(json.loads(line)["item_id"])
        except (ValueError, KeyError, TypeError):
            pass
    return ids


N_ITEMS = 30


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, demo_dir) -> tuple[Path, Path]:
    """(input of N_ITEMS items, the output of one uninterrupted run on it): what every interrupted run must end with."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    inp, full = make_input(folder / "items.csv", n=N_ITEMS), folder / "full.csv"
    proc = run_cli(inp, full, demo_dir)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    return inp, full


def resume_and_compare(inp: Path, out: Path, demo_dir, saved: int, full: Path) -> None:
    """Run the same command again: it resumes from the `saved` items and ends with the uninterrupted output."""
    proc = run_cli(inp, out, demo_dir)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert f"resuming: {saved} of {N_ITEMS} items already scored" in proc.stderr.read()
    assert not partial_path(out).exists()
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(full))


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def test_interrupted_run_resumes_to_the_same_output(tmp_path, demo_dir, uninterrupted):
    """kill -9 from outside at whatever moment the run is at once 6 items are written (writing a batch of 3,
    scoring, or between): the run is held after item 25, so it cannot have finished."""
    inp, full = uninterrupted
    out = tmp_path / "resumed.csv"
    partial = partial_path(out)
    proc = run_cli(inp, out, demo_dir, "--flush-every", "3",
                   hooks={"ARMORM_CLI_TEST_PAUSE_AFTER": f"25:{tmp_path / 'held'}"})  # fmt: skip
    wait_for(lambda: partial.exists() and len(saved_rows(partial)) >= 6, proc, "6 items were written")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    saved = len(set(saved_rows(partial)))
    assert 6 <= saved <= 25 and not out.exists()
    resume_and_compare(inp, out, demo_dir, saved, full)


@pytest.mark.parametrize(
    "flush_every, flush_seconds, torn, written",
    [
        (4, "1000", False, (8, 8)),  # items 1-8 were written in two batches; 9-11 waited
        (4, "1000", True, (8, 10)),  # killed while writing 9-11: a torn batch, its whole lines kept
        (1000, "0", False, (10, 10)),  # the time limit (0 s): every item written as it came, 11 not yet
    ],
)
def test_a_kill_loses_at_most_the_unwritten_batch(tmp_path, demo_dir, uninterrupted, flush_every, flush_seconds,
                                                  torn, written):  # fmt: skip
    """The run kills itself (kill -9) once its 11th item is scored, before the item is written: at most the batch
    that waited is lost, exactly as many as the flush settings say, and the rerun ends with the uninterrupted
    output."""
    inp, full = uninterrupted
    out = tmp_path / "out.csv"
    partial = partial_path(out)
    proc = run_cli(inp, out, demo_dir, "--flush-every", str(flush_every), "--flush-seconds", flush_seconds,
                   hooks={"ARMORM_CLI_TEST_KILL_AFTER": "11:torn" if torn else "11"})  # fmt: skip
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    ids = saved_rows(partial)
    assert ids == [f"q{i}" for i in range(len(ids))]  # in order, each once
    assert written[0] <= len(ids) <= written[1]
    assert 11 - len(ids) <= flush_every
    assert partial.read_bytes().endswith(b"\n") != torn  # a torn batch ends in half a line
    assert not out.exists()
    resume_and_compare(inp, out, demo_dir, len(ids), full)


def test_partial_file_of_another_input_is_refused(tmp_path, demo_dir):
    inp = make_input(tmp_path / "items.csv", n=3)
    out = tmp_path / "out.csv"
    (tmp_path / "out.csv.partial.jsonl").write_text('{"input_sha256": "something else"}\n')
    proc = run_cli(inp, out, demo_dir)
    assert proc.wait(timeout=120) == 2
    assert "belongs to another input file" in proc.stderr.read()


NICENESS_PROBE = """
import os, ray
from armorm_ui.ray_engine import connect
connect()
print(os.nice(0), ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote()))
"""


@pytest.mark.ray
def test_a_local_ray_instance_runs_its_workers_at_the_drivers_priority():
    # Ray's default niceness of 15 let any busy process on the machine starve the actors that do the whole job
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run([sys.executable, "-c", NICENESS_PROBE], capture_output=True, text=True, env=env, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    driver, worker = map(int, run.stdout.split()[-2:])
    assert worker == driver


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
    """A run killed (kill -9) after its first item was written: (input, output, partial file)."""
    inp = make_input(tmp_path / "items.csv", n=n)
    out = tmp_path / "out.csv"
    proc = run_cli(inp, out, demo_dir, "--flush-every", "1", *extra, hooks={"ARMORM_CLI_TEST_KILL_AFTER": "2"})
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    partial = tmp_path / "out.csv.partial.jsonl"
    assert saved_rows(partial) == ["q0"]
    return inp, out, partial


def header_of(inp: Path, model: Path, **options) -> dict:
    """The run header the CLI writes for `inp` on `model` (on the CPU, the other settings from the environment)."""
    from dataclasses import replace

    from armorm_ui.batch import file_digest
    from armorm_ui.cli import run_header
    from armorm_ui.config import AppConfig

    return run_header(file_digest(inp), inp, replace(AppConfig.from_env(), model=str(model), device="cpu"), **options)


def test_resuming_with_other_options_is_refused_before_scoring(tmp_path, demo_dir, no_model, capsys):
    inp = make_input(tmp_path / "items.csv", n=3)
    out = tmp_path / "out.csv"
    header = header_of(inp, demo_dir, attribute=False)
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


def test_malformed_results_are_scored_again(tmp_path, demo_dir, uninterrupted, capsys):
    """Stored results that parse as JSON but are not results (18 gating weights, a NaN score, no token counts, a
    reward that is text) are dropped and scored again, never written out or ended in a traceback."""
    inp, full = uninterrupted
    out, partial = tmp_path / "out.csv", tmp_path / "out.csv.partial.jsonl"
    proc = run_cli(inp, out, demo_dir, "--flush-every", "1", hooks={"ARMORM_CLI_TEST_KILL_AFTER": "6"})
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    header, *rows = map(json.loads, partial.read_text().splitlines())
    assert [row["item_id"] for row in rows] == [f"q{i}" for i in range(5)]
    results = [row["result"] for row in rows]
    results[0]["gating_output"] = results[0]["gating_output"][:18]
    results[1]["scores"][1] = float("nan")
    del results[2]["candidate_tokens"]
    results[3]["rewards"][0][4] = "high"
    partial.write_text("".join(json.dumps(x) + "\n" for x in [header, *rows]))
    assert cli_main(inp, "-o", out, "--model", demo_dir) == 0
    err = capsys.readouterr().err
    assert "4 damaged line(s) dropped (the first, line 2: gating_output: expected shape (19,), got (18,))" in err
    assert f"resuming: 1 of {N_ITEMS} items already scored" in err and "Traceback" not in err
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(full))


def test_weights_replaced_in_the_same_folder_are_refused(tmp_path, demo_dir, no_model, capsys):
    """The partial file's header has a fingerprint of the checkpoint's files: a file rewritten (a new time), a
    safetensors header that changed (same size, same time) or a config that changed are each refused before the
    model loads; with the files as they were, the partial file is read again."""
    from armorm_ui.cli import load_partial

    model = Path(shutil.copytree(demo_dir, tmp_path / "model"))
    inp, out, partial = partial_of(tmp_path, 4, model)
    shard, config = model / "model-00001-of-00002.safetensors", model / "config.json"
    times = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (shard, config)}

    def refused() -> None:
        assert cli_main(inp, "-o", out, "--model", model) == 2
        err = capsys.readouterr().err
        assert "was scored with weights 'sha256:" in err and f"the files of {model} changed since" in err
        assert "delete it to start over, or choose another output" in err

    os.utime(shard, ns=(times[shard][0], times[shard][1] + 10**9))
    refused()
    data = shard.read_bytes()
    assert b'{"__metadata__":{"format":"pt"}' in data[:100]
    shard.write_bytes(data.replace(b'"format":"pt"', b'"format":"np"', 1))
    os.utime(shard, ns=times[shard])
    refused()
    shard.write_bytes(data)
    os.utime(shard, ns=times[shard])
    text = config.read_text()
    config.write_text(text.replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": 2e-05'))
    os.utime(config, ns=times[config])
    refused()
    config.write_text(text)
    os.utime(config, ns=times[config])
    assert load_partial(partial, header_of(inp, model, attribute=False), {"q0", "q1", "q2", "q3"}).keys() == {"q0"}


def test_a_hub_models_weights_are_its_cached_commit(tmp_path, monkeypatch):
    """A hub id is identified by the commit its revision resolves to in the local cache (huggingface_hub's layout:
    models--ORG--NAME/refs/REVISION), read without the network, else by the id and revision."""
    from armorm_ui.fingerprint import weights_fingerprint

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    name, commit = "RLHFlow/ArmoRM-Llama3-8B-v0.1", "0123456789abcdef0123456789abcdef01234567"
    assert weights_fingerprint(name, "") == f"{name}@main (not in the local cache)"
    refs = tmp_path / "models--RLHFlow--ArmoRM-Llama3-8B-v0.1" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    assert weights_fingerprint(name, "") == weights_fingerprint(name, "main") == f"{name}@{commit}"
    assert weights_fingerprint(name, "f" * 40) == f"{name}@{'f' * 40}"
    assert weights_fingerprint(name, "v2") == f"{name}@v2 (not in the local cache)"


def ctrl_c_as_in_a_terminal() -> None:
    """In the child, before it starts: SIGINT's default action, as a terminal's foreground job has. A job started in
    the background by a non-interactive shell (`make test &`, CI runners) inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: the test's Ctrl-C would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_saves_and_resumes(tmp_path, demo_dir, uninterrupted):
    """Ctrl-C while 5 scored items wait to be written (no batch is due): they are written, and the rerun resumes
    from them. The run is held after its 5th item until the SIGINT comes, so it cannot finish first."""
    inp, full = uninterrupted
    out = tmp_path / "out.csv"
    held = tmp_path / "held"
    proc = run_cli(inp, out, demo_dir, "--flush-every", "1000", "--flush-seconds", "1000",
                   hooks={"ARMORM_CLI_TEST_PAUSE_AFTER": f"5:{held}"}, preexec_fn=ctrl_c_as_in_a_terminal)  # fmt: skip
    wait_for(held.exists, proc, "the 5th item was scored")
    assert saved_rows(partial_path(out)) == []  # the 5 wait in memory
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read()
    assert f"interrupted: 5 of {N_ITEMS} items are saved" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    assert saved_rows(partial_path(out)) == [f"q{i}" for i in range(5)]
    resume_and_compare(inp, out, demo_dir, 5, full)


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
    proc = run_cli(inp, out, demo_dir, "--flush-every", "5", "--flush-seconds", "1000", command="evaluate",
                   hooks={"ARMORM_CLI_TEST_KILL_AFTER": "13"})  # fmt: skip
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    assert len(saved_rows(partial)) == 10  # two batches of 5; 11-13 waited
    assert not out.exists() and not (tmp_path / "resumed.report.json").exists()
    proc = run_evaluate(inp, out, demo_dir)
    assert proc.wait(timeout=600) == 0 and "resuming: 10 of 40 items already scored" in proc.stderr.read()
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


def test_evaluate_a_best_of_n_file_writes_rewardbench_2_results(tmp_path, demo_dir, scorer):
    """RewardBench 2's layout through the command line: a prompt per row, every chosen x rejected pair in the table,
    the accuracy over prompts in the report, and RewardBench's own results file with its per-subset scores of the
    API's scores for the same answers."""
    from armorm_ui import leaderboards

    from .test_ui_evaluate import best_of_n_rows, scores_of

    rows = best_of_n_rows(10)
    inp = tmp_path / "rb2.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "rb2.csv"
    proc = run_evaluate(inp, out, demo_dir)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert f"over {len(rows)} prompts" in proc.stderr.read()
    report = json.loads((tmp_path / "rb2.report.json").read_text())
    assert report["layout"] == "best_of_n" and report["prompts"]["accuracy"]["n"] == len(rows)
    assert len(pd.read_csv(out)) == report["pairs"] == sum(len(r["chosen"]) * len(r["rejected"]) for r in rows)
    scores = scores_of(scorer, rows)
    theirs = leaderboards.rewardbench2_scores([r["subset"] for r in rows], [r["id"] for r in rows],
                                              [c for c, _ in scores], [r for _, r in scores])["subsets"]  # fmt: skip
    written = json.loads((tmp_path / "rb2.rewardbench.json").read_text())
    assert written["model"] == str(demo_dir) and written["model_type"] == "Custom Classifier"
    assert {k: written[k] for k in theirs} == pytest.approx(theirs, abs=1e-6)
    assert report["meta"]["sha256"] == hashlib.sha256(inp.read_bytes()).hexdigest()
    assert report["meta"]["input"] == "rb2.jsonl" and report["meta"]["model"] == str(demo_dir)


def killed_evaluate(tmp_path, demo_dir, inp, *extra) -> Path:
    """An `evaluate` run killed (kill -9) after its first two pairs were written: its output's path."""
    out = tmp_path / "out.csv"
    proc = run_cli(inp, out, demo_dir, "--flush-every", "1", *extra, command="evaluate",
                   hooks={"ARMORM_CLI_TEST_KILL_AFTER": "3"})  # fmt: skip
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    assert len(saved_rows(partial_path(out))) == 2
    return out


def evaluate_main(*argv) -> int:
    from armorm_ui.cli import main

    return main(["evaluate", *map(str, argv), "--device", "cpu"])


def test_resuming_with_swapped_columns_is_refused(tmp_path, demo_dir, no_model, capsys):
    """--columns chosen=rejected,rejected=chosen on a resumed run would put swapped margins beside the first run's."""
    inp = make_pairs(tmp_path / "pairs.jsonl", n=6)
    out = killed_evaluate(tmp_path, demo_dir, inp)
    assert evaluate_main(inp, "-o", out, "--model", demo_dir, "--columns", "chosen=rejected,rejected=chosen") == 2
    err = capsys.readouterr().err
    assert "was scored with columns {}; this run has columns {'chosen': 'rejected', 'rejected': 'chosen'}" in err
    assert "delete it to start over, or choose another output" in err


def test_resuming_with_another_sample_or_seed_is_refused(tmp_path, demo_dir, no_model, capsys):
    """A data set's --sample and --seed choose the pairs: another one is refused, naming it; the same ones resume."""
    import datasets

    rows = pd.read_json(make_pairs(tmp_path / "pairs.jsonl", n=8), lines=True).to_dict(orient="records")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    data = ["--dataset", tmp_path / "saved"]
    out = killed_evaluate(tmp_path, demo_dir, None, *data, "--sample", "5")
    assert evaluate_main("-o", out, "--model", demo_dir, *data, "--sample", "4") == 2
    assert "was scored with sample 5; this run has sample 4" in capsys.readouterr().err
    assert evaluate_main("-o", out, "--model", demo_dir, *data, "--sample", "5", "--seed", "1") == 2
    assert "was scored with seed 0; this run has seed 1" in capsys.readouterr().err
    proc = run_evaluate(None, out, demo_dir, *map(str, data), "--sample", "5")
    assert proc.wait(timeout=600) == 0 and "resuming: 2 of 5 items already scored" in proc.stderr.read()


HEAVY = ("gradio", "gradio_client", "fastapi", "starlette", "uvicorn", "httpx", "mcp", "plotly", "torch",
         "transformers", "tokenizers", "safetensors", "huggingface_hub", "accelerate", "datasets", "pandas",
         "pyarrow", "scipy", "ray", "sqlalchemy")  # fmt: skip
"""Nothing the CLI needs before the model loads for a CSV or JSONL file: the web app, the model's libraries (they
come with the model), the data libraries (pandas when results are written, pyarrow for Parquet input only)."""

BEFORE_THE_MODEL = """
import json, sys
import armorm_ui.cli as cli

class Reached(BaseException):
    pass

def load_scorer(self):
    raise Reached

cli.AppConfig.load_scorer = load_scorer
try:
    cli.main(sys.argv[1:])
    reached = "returned"
except Reached:
    reached = "load_scorer"
except SystemExit as e:
    reached = f"exit {e.code}"
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"reached": reached, "heavy": heavy, "cli_loaded": "armorm_ui.batch" in sys.modules}))
"""


@pytest.mark.parametrize("command", ["score", "evaluate", "help"])
def test_nothing_heavy_is_imported_before_the_model_loads(tmp_path, command):
    """Everything the CLI does before the model loads (reading and validating the whole file, its digest, the
    output's checks, the partial file) runs in a fresh interpreter, stopped where the model would load: none of
    HEAVY is imported by then."""
    if command == "score":
        argv = ["score", str(make_input(tmp_path / "items.csv", n=5)), "-o", str(tmp_path / "out.parquet")]
    elif command == "evaluate":
        argv = ["evaluate", str(make_pairs(tmp_path / "pairs.jsonl", n=5)), "-o", str(tmp_path / "out.csv")]
    else:
        argv = ["score", "--help"]
    env = {k: v for k, v in os.environ.items() if k not in HOOKS}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", BEFORE_THE_MODEL, *argv, "--device", "cpu"], cwd=ROOT, env=env,
                          input=json.dumps(HEAVY), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["reached"] == ("exit 0" if command == "help" else "load_scorer"), done.stderr
    assert found["cli_loaded"]
    assert found["heavy"] == []


@pytest.mark.parametrize("flag, value", [("--flush-every", "0"), ("--flush-every", "x"), ("--flush-seconds", "-1"),
                                         ("--flush-seconds", "nan")])  # fmt: skip
def test_bad_flush_settings_are_refused_before_the_model_loads(tmp_path, no_model, capsys, flag, value):
    inp = make_input(tmp_path / "items.csv", n=2)
    with pytest.raises(SystemExit) as e:
        cli_main(inp, "-o", tmp_path / "out.csv", flag, value)
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_the_partial_file_is_written_in_batches(tmp_path, monkeypatch):
    """Rows wait in memory and go out `every` at a time, each batch in one write and one sync; nothing is read back
    or rewritten, so a row costs the same however long the file is. With 0 seconds, every row is due at once."""
    from armorm_ui import cli

    class Recording:
        def __init__(self, f):
            self.f, self.writes = f, []

        def write(self, data):
            self.writes.append(data)
            return self.f.write(data)

        def flush(self):
            self.f.flush()

        def fileno(self):
            return self.f.fileno()

    syncs = []
    monkeypatch.setattr(cli.os, "fsync", syncs.append)
    path = tmp_path / "p.jsonl"
    with path.open("a", encoding="utf-8") as f:
        rec = Recording(f)
        writer = cli.PartialWriter(rec, every=4, seconds=1000)
        for i in range(10):
            writer.add({"item_id": f"q{i}"})
            if writer.due():
                writer.flush()
            assert path.stat().st_size == sum(len(w) for w in rec.writes)  # what was written is on disk, no more
        assert len(rec.writes) == len(syncs) == 2 and len(writer.waiting) == 2
        writer.flush()
        assert len(rec.writes) == len(syncs) == 3
        timed = cli.PartialWriter(rec, every=1000, seconds=0)
        timed.add({"item_id": "q10"})
        assert timed.due()
        timed.flush()
    assert [json.loads(line)["item_id"] for line in path.read_text().splitlines()] == [f"q{i}" for i in range(11)]


def test_results_frame_is_export_frame_per_item():
    """batch.results_frame builds the table for all items at once; it must stay exactly what concatenating
    tables.export_frame per item gives (the same columns, values and types), with and without attributions."""
    from armorm_ui import explain, tables
    from armorm_ui.batch import Item, results_frame
    from armorm_ui.results import ScoreResult

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        counts = [1, 3, 2, 28, 5, 2]
        items = [Item(f"q{k}", [], [f"=answer {k}.{c}" for c in range(n)], k) for k, n in enumerate(counts)]
        results = [ScoreResult(rng.normal(size=n).astype(dtype), rng.normal(size=(n, 19)).astype(dtype),
                               rng.random(19).astype(dtype), rng.random(19).astype(dtype), np.eye(19), 4,
                               np.arange(n)) for n in counts]  # fmt: skip
        extras = [[{"segments": ["a", "é"], "effects": [0.5, -1.0], "trimmed_tokens": [1, 2],
                    "trimmed_scores": [0.1, 0.2]}] * n for n in counts]  # fmt: skip
        for attributions in (None, extras):
            frames = []
            for k, (item, result) in enumerate(zip(items, results)):
                frame = tables.export_frame(result, explain.candidate_labels(result.n), item.candidates)
                frame.insert(0, "item_id", item.item_id)
                if attributions is not None:
                    frame["segments"] = [json.dumps(a["segments"], ensure_ascii=False) for a in attributions[k]]
                    frame["segment_effects"] = [json.dumps(a["effects"]) for a in attributions[k]]
                    frame["length_probe"] = [json.dumps(list(zip(a["trimmed_tokens"], a["trimmed_scores"])))
                                             for a in attributions[k]]  # fmt: skip
                frames.append(frame)
            expected = pd.concat(frames, ignore_index=True)
            pd.testing.assert_frame_equal(results_frame(items, results, attributions), expected, check_exact=True)


def test_the_reports_statistics_are_scipys():
    """evaluation computes Wilson's interval and Spearman's rho without scipy.stats (a second to import): they must
    be scipy's to the bit."""
    from scipy import special, stats

    from armorm_ui import evaluation

    assert evaluation.Z == special.ndtri(0.5 + evaluation.CONFIDENCE / 2)
    for n in [1, 2, 3, 7, 40, 333]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=evaluation.CONFIDENCE, method="wilson")
            assert evaluation.wilson(k, n) == (ci.low, ci.high)
    rng = np.random.default_rng(0)
    for n in [3, 4, 10, 100]:
        a = rng.normal(size=n)
        for b in (rng.normal(size=n), rng.integers(-2, 3, size=n), 2 * a, -a):
            if np.ptp(b) == 0:
                continue
            expected = stats.spearmanr(a, b)
            assert evaluation.spearman(a, b) == (float(expected.statistic), float(expected.pvalue))


def test_compare_two_runs_on_the_same_pairs(tmp_path, capsys):
    """`compare A B`: the decisions of two runs over the pairs both tables have, McNemar's exact test as
    statsmodels computes it; tables that share nothing, or are not tables of evaluate, are refused clearly."""
    from statsmodels.stats.contingency_tables import mcnemar

    from armorm_ui.cli import main

    rng = np.random.default_rng(3)
    a, b = rng.random(120) < 0.7, rng.random(120) < 0.55
    ids = [f"=p{i}" for i in range(120)]  # formula-like ids, escaped in the CSV, matched all the same
    from armorm_ui.batch import write_results

    write_results(pd.DataFrame({"pair_id": ids, "right": a, "margin": 0.0}), tmp_path / "a.csv")
    write_results(
        pd.DataFrame({"pair_id": ids[:100] + ["extra"], "right": list(b[:100]) + [True]}), tmp_path / "b.parquet"
    )
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.parquet"), "-o", str(tmp_path / "c.json")]) == 0
    err = capsys.readouterr().err
    found = json.loads((tmp_path / "c.json").read_text())
    assert found["pairs"] == 100 and found["left_out"] == 21 and "21 in one table only" in err
    table = np.array(found["table"])
    assert table.sum() == 100 and table[0, 0] == int((a[:100] & b[:100]).sum())
    assert found["mcnemar"]["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert found["difference"] == pytest.approx(a[:100].mean() - b[:100].mean())
    assert found["interval"]["low"] <= found["difference"] <= found["interval"]["high"]
    pd.DataFrame({"pair_id": ["x"], "right": [True]}).to_csv(tmp_path / "x.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "x.csv")]) == 2
    assert "share no pair ids" in capsys.readouterr().err
    pd.DataFrame({"id": ["x"]}).to_csv(tmp_path / "y.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "y.csv")]) == 2
    assert "not a per-pair table of `evaluate`" in capsys.readouterr().err
