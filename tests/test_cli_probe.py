"""`python -m armorm_ui probe`: the per-answer table adds up (each answer's objective parts to its Δscore), the
report is what numpy and scipy compute from that table alone, a killed run resumes to the same report, and what it
would refuse later (an unknown probe, bad rows, a partial file of other probes) is refused before the model loads.

Runs are kept small: a few rows and a subset of probes that covers both sides (answer and conversation) and a probe
that skips on some answers."""

from __future__ import annotations

import json
import math
import signal

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from armorm_ui.objectives import NAMES

from .test_cli import BEFORE_THE_MODEL, HEAVY, ROOT, header_of, run_cli, saved_rows

PROBES = "bold,opener,padding,first_half,user_disagrees,brevity_system"
"""Answer and conversation side; `bold` skips an answer with bold text, `first_half` a one-sentence answer."""


def make_candidates(path, n: int = 3):
    rows = [{"item_id": f"q{i}", "prompt": f"Question {i}: why is the sky blue?",
             "response_1": "Because of Rayleigh scattering. Blue light scatters more than red light.",
             "response_2": f"It **just** is, {i}.", "response_3": "=1+1"} for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def make_pairs(path, n: int = 4):
    rows = [{"id": f"p{i}", "subset": ["chat", "safety"][i % 2], "prompt": f"Question {i}: what is {i} + {i}?",
             "chosen": f"The answer is {2 * i}. Adding {i} to itself gives {2 * i}." * (1 + i % 2),
             "rejected": f"Maybe {i}."} for i in range(n)]  # fmt: skip
    rows += [{**r, "id": r["id"] + "-swapped", "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)  # each pair and its swap: right and wrong ones
    return path


def cli(*argv) -> int:
    from armorm_ui.cli import main

    return main(["probe", *map(str, argv), "--device", "cpu"])


def report_of(out) -> dict:
    return json.loads(out.with_name(out.stem + ".report.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_dir) -> dict:
    """One uninterrupted run on a candidates file and one on a pairs file: (input, output, table, report)."""
    folder = tmp_path_factory.mktemp("probe-runs")
    found = {}
    for kind, make in (("candidates", make_candidates), ("pairs", make_pairs)):
        inp = make(folder / ("pairs.jsonl" if kind == "pairs" else "candidates.csv"))
        out = folder / f"{kind}-out.csv"
        assert cli(inp, "-o", out, "--model", demo_dir, "--probes", PROBES) == 0
        found[kind] = (inp, out, pd.read_csv(out, keep_default_na=False, na_values=[""]), report_of(out))
    return found


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def check_rate(entry: dict, flags: np.ndarray) -> None:
    n, k = len(flags), int(flags.sum())
    assert (entry["n"], entry["k"]) == (n, k)
    if n:
        assert entry["rate"] == pytest.approx(k / n)
        assert (entry["low"], entry["high"]) == pytest.approx(wilson(k, n), abs=1e-12)
    else:
        assert entry["rate"] is None


@pytest.mark.parametrize("kind", ["candidates", "pairs"])
def test_the_table_adds_up_and_the_report_is_the_tables(runs, kind):
    inp, out, table, report = runs[kind]
    assert report["input"] == inp.name and report["input_kind"] == kind and report["pairs"] == (kind == "pairs")
    assert report["probe_names"] == PROBES.split(",")
    answers = 3 * 3 if kind == "candidates" else 8 * 2
    assert len(table) == answers * 6 and report["answers"] == answers
    assert set(table["candidate"]) == ({"A", "B", "C"} if kind == "candidates" else {"chosen", "rejected"})
    done = table[table["applied"]]
    assert 0 < len(done) < len(table)  # some probes skipped some answers
    assert (table.loc[~table["applied"], "skipped_reason"] != "").all() and done["skipped_reason"].isna().all()
    parts = done[list(NAMES)].to_numpy(float)
    np.testing.assert_allclose(parts.sum(axis=1), done["delta"], atol=1e-9)
    np.testing.assert_allclose(done["reward_part"] + done["weight_part"], done["delta"], atol=1e-9)
    np.testing.assert_allclose(done["score_after"] - done["score_before"], done["delta"], atol=1e-9)
    answer_side = done[done["side"] == "answer"]
    assert (answer_side["weight_part"] == 0).all()  # the gate reads the conversation only
    assert (done.loc[done["side"] == "conversation", "edited_part"].isin(["user", "system"])).all()
    for entry in report["probes"]:
        mine = table[table["probe"] == entry["probe"]]
        applied = mine[mine["applied"]]
        assert (entry["applied"], entry["skipped"]) == (len(applied), len(mine) - len(applied))
        deltas = applied["delta"].to_numpy(float)
        assert entry["mean_delta"] == pytest.approx(deltas.mean(), abs=1e-12)
        low, high = stats.t.interval(0.95, len(deltas) - 1, loc=deltas.mean(), scale=stats.sem(deltas))
        assert (entry["low"], entry["high"]) == pytest.approx((low, high), abs=1e-12)
        check_rate(entry["raised"], deltas > 0)
        np.testing.assert_allclose(entry["mean_parts"], applied[list(NAMES)].mean(), atol=1e-12)
        assert entry["mean_reward_part"] == pytest.approx(applied["reward_part"].mean(), abs=1e-12)
        assert entry["mean_weight_part"] == pytest.approx(applied["weight_part"].mean(), abs=1e-12)
        assert entry["mean_tokens_added"] == pytest.approx(applied["tokens_added"].mean())
        if kind == "pairs":  # flips: of the pairs it got right; rescues: of those it got wrong
            rejected, chosen = applied[applied["candidate"] == "rejected"], applied[applied["candidate"] == "chosen"]
            flips = rejected[rejected["other_score_before"] > rejected["score_before"]]
            rescues = chosen[~(chosen["score_before"] > chosen["other_score_before"])]
            check_rate(entry["flip"], (flips["score_after"] > flips["other_score_after"]).to_numpy())
            check_rate(entry["rescue"], (rescues["score_after"] > rescues["other_score_after"]).to_numpy())


def test_scores_are_the_scorers_and_edits_are_the_librarys(runs, scorer):
    """Oracles: the base scores are the API's for the same answers, and each edited text is what the probe itself
    makes of the original."""
    from armorm_ui.probes import BY_NAME, apply

    inp, _, table, _ = runs["pairs"]
    first = pd.read_json(inp, lines=True).iloc[1]
    messages = [{"role": "user", "content": first["prompt"]}]
    api = scorer.score(messages, [first["chosen"], first["rejected"]])
    rows = table[table["item_id"] == first["id"]]
    for k, name in enumerate(("chosen", "rejected")):
        mine = rows[rows["candidate"] == name]
        np.testing.assert_allclose(mine["score_before"], api.scores[k], atol=1e-6)
        for _, row in mine[mine["applied"]].iterrows():
            edit = apply(BY_NAME[row["probe"]], messages, first[name])
            if row["side"] == "answer":
                assert (row["original"], row["edited"]) == (first[name], edit.answer)
            else:
                changed = [m["content"] for m in edit.messages if m not in messages]
                assert changed == [row["edited"]]
    opener = rows[(rows["probe"] == "opener") & (rows["candidate"] == "chosen")].iloc[0]
    np.testing.assert_allclose(opener["score_after"], scorer.score(messages, [opener["edited"]]).scores[0], atol=1e-6)


def test_formula_cells_are_escaped_in_the_csv(runs):
    _, out, _, _ = runs["candidates"]
    assert "'=1+1" in out.read_text() and "\n=1+1" not in out.read_text().replace("\r", "")


def same_report(a: dict, b: dict, atol: float = 1e-9) -> None:
    """Equal, numbers to float noise (a resumed run mixes stored records with ones computed in another process)."""
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            same_report(a[k], b[k], atol)
        elif isinstance(a[k], list) and a[k] and isinstance(a[k][0], dict):
            assert len(a[k]) == len(b[k])
            for x, y in zip(a[k], b[k]):
                same_report(x, y, atol)
        elif isinstance(a[k], float) or isinstance(b[k], float):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=atol), k
        elif isinstance(a[k], list) and a[k] and isinstance(a[k][0], float):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=atol)
        else:
            assert a[k] == b[k], k


def killed(tmp_path, inp, demo_dir, after: int = 3):
    """A probe run on `inp` killed (kill -9) once its `after`-th item is probed, the items before it written."""
    out = tmp_path / "resumed.csv"
    proc = run_cli(inp, out, demo_dir, "--probes", PROBES, "--flush-every", "1", command="probe",
                   hooks={"ARMORM_CLI_TEST_KILL_AFTER": str(after)})  # fmt: skip
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr.read()
    partial = out.with_name(out.name + ".partial.jsonl")
    assert len(saved_rows(partial)) == after - 1 and not out.exists()
    return out, partial


def test_a_killed_run_resumes_to_the_same_report(tmp_path, demo_dir, runs, capsys):
    inp, full, table, report = runs["pairs"]
    out, partial = killed(tmp_path, inp, demo_dir)
    header = json.loads(partial.read_text().splitlines()[0])
    assert header["input_kind"] == "pairs" and header["probes"] == PROBES.split(",")
    assert cli(inp, "-o", out, "--model", demo_dir, "--probes", "bold,opener") == 2  # other probes: refused
    err = capsys.readouterr().err
    assert (
        "was scored with probes ['bold', 'opener', 'padding'" in err and "this run has probes ['bold', 'opener']" in err
    )
    assert cli(inp, "-o", out, "--model", demo_dir, "--probes", PROBES) == 0
    assert "resuming: 2 of 8 items already scored" in capsys.readouterr().err
    assert not partial.exists()
    same_report(report_of(out), report)
    # float32 scores: which edited conversations share a forward pass depends on what the cache already held, so
    # a resumed run agrees to float32 noise (about 1e-7 here), not bit for bit
    resumed = pd.read_csv(out, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(resumed, table, rtol=1e-6, atol=1e-6)


def test_a_damaged_record_is_probed_again(tmp_path, demo_dir, runs, capsys):
    """A stored line that is valid JSON but whose probe record does not fit (a part of 18 objectives, a missing
    probe) is dropped, and its item probed again."""
    inp, _, table, report = runs["pairs"]
    out, partial = killed(tmp_path, inp, demo_dir, after=4)
    lines = partial.read_text().splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    applied = next(d for d in rows[0]["attribution"][0]["probes"] if d["skipped"] is None)
    applied["reward_part"] = applied["reward_part"][:-1]
    rows[1]["attribution"][1]["probes"].pop()
    partial.write_text("\n".join([lines[0], *map(json.dumps, rows)]) + "\n")
    assert cli(inp, "-o", out, "--model", demo_dir, "--probes", PROBES) == 0
    err = capsys.readouterr().err
    assert "2 damaged line(s) dropped" in err and "resuming: 1 of 8 items already scored" in err
    same_report(report_of(out), report)


@pytest.fixture
def no_model(monkeypatch):
    from armorm_ui.config import AppConfig

    def refuse(self):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(AppConfig, "load_scorer", refuse)


def test_refusals_come_before_the_model_loads(tmp_path, no_model, capsys):
    items = make_candidates(tmp_path / "items.csv")
    assert cli(items, "-o", tmp_path / "out.csv", "--probes", "bold,glitter") == 2
    err = capsys.readouterr().err
    assert "unknown probe(s) 'glitter'; choose from bold, bullets" in err and "brevity_system" in err
    assert cli(items, "-o", tmp_path / "out.csv", "--probes", ",") == 2
    assert "names no probe" in capsys.readouterr().err

    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"prompt": "q", "response_1": "a"}, {"prompt": "", "response_1": "b"},
                  {"prompt": "q", "response_1": ""}]).to_csv(bad, index=False)  # fmt: skip
    assert cli(bad, "-o", tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert "line 3: prompt is empty" in err and "line 4: no responses" in err

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n'
                     '{"question": "q", "chosen": "a", "rejected": "b"}\n')  # fmt: skip
    assert cli(pairs, "-o", tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert "line 2: rejected is empty" in err and "line 3: prompt is empty" in err  # other columns are ignored
    assert cli(pairs, "-o", tmp_path / "out.csv", "--columns", "prompt=question") == 2
    assert "line 1: prompt is empty" in capsys.readouterr().err  # a mapped file is read as pairs
    assert cli(items, "-o", tmp_path / "out.csv", "--columns", "chosen=response_1") == 2
    assert "no 'rejected' column" in capsys.readouterr().err
    assert cli(items, "-o", items) == 2
    assert "is the input file" in capsys.readouterr().err


def test_resuming_with_other_probes_or_another_command_is_refused(tmp_path, no_model, capsys, demo_dir):
    inp = make_pairs(tmp_path / "pairs.jsonl", n=2)
    out, partial = tmp_path / "out.csv", tmp_path / "out.csv.partial.jsonl"
    header = header_of(inp, demo_dir, attribute=False, columns={}, input_kind="pairs", probes=["bold"])
    partial.write_text(json.dumps(header) + "\n")
    assert cli(inp, "-o", out, "--model", demo_dir, "--probes", "bold,emojis") == 2
    assert "probes ['bold']; this run has probes ['bold', 'emojis']" in capsys.readouterr().err
    from armorm_ui.cli import main

    assert main(["evaluate", str(inp), "-o", str(out), "--model", str(demo_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert (
        "no layout, input_kind 'pairs', probes ['bold']; this run has layout 'pairs', no input_kind, no probes" in err
    )


def test_nothing_heavy_is_imported_before_the_model_loads(tmp_path):
    import os
    import subprocess
    import sys

    argv = ["probe", str(make_pairs(tmp_path / "pairs.jsonl", n=3)), "-o", str(tmp_path / "out.csv"), "--probes",
            "bold,user_agrees"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARMORM_CLI_TEST")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", BEFORE_THE_MODEL, *argv, "--device", "cpu"], cwd=ROOT, env=env,
                          input=json.dumps(HEAVY), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["reached"] == "load_scorer" and found["heavy"] == []


@pytest.mark.ray
def test_ray_engine_gives_the_single_process_output(tmp_path, demo_dir):
    pytest.importorskip("ray")
    inp = make_pairs(tmp_path / "pairs.jsonl", n=2)
    single, distributed = tmp_path / "single.parquet", tmp_path / "ray.parquet"
    assert cli(inp, "-o", single, "--model", demo_dir, "--probes", PROBES) == 0
    proc = run_cli(inp, distributed, demo_dir, "--probes", PROBES, "--engine", "ray", "--workers", "2",
                   command="probe")  # fmt: skip
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(distributed), pd.read_parquet(single), atol=1e-6)
    same_report(report_of(distributed), report_of(single), atol=1e-6)  # as the table


def test_a_report_with_one_answer_is_strict_json(tmp_path, demo_dir):
    """One answer: no interval can be computed; the report says null, never NaN."""
    inp = tmp_path / "one.csv"
    pd.DataFrame([{"prompt": "Why?", "response_1": "Because it is. That is all."}]).to_csv(inp, index=False)
    out = tmp_path / "out.jsonl"
    assert cli(inp, "-o", out, "--model", demo_dir, "--probes", "opener") == 0
    text = out.with_name("out.report.json").read_text()
    assert "NaN" not in text
    entry = json.loads(text)["probes"][0]
    assert entry["applied"] == 1 and entry["low"] is None and not math.isnan(entry["mean_delta"])
