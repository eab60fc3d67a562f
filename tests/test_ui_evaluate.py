"""The Evaluate tab's file run: its per-pair table downloads as a CSV that stays inert in a spreadsheet; best-of-N and
RM-Bench files give the accuracies their benchmarks' own rules give for the scores /score gives; a picked pair is
read back with its texts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from armorm_ui import leaderboards
from armorm_ui.config import AppConfig
from armorm_ui.explain import preference_probability
from armorm_ui.tables import FORMULA_PREFIXES
from armorm_ui.ui.evaluate import evaluate_file, fit_text, pair_texts, summary_text, table_rows

FORMULAS = ['=WEBSERVICE("http://x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_the_per_pair_csv_escapes_formulas(tmp_path, fake_scorer):
    rows = [{"id": f, "subset": f, "prompt": f, "chosen": f"{f} yes", "rejected": f} for f in FORMULAS]
    out = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "pairs.jsonl", rows))
    with open(out["table"], newline="", encoding="utf-8") as f:
        header, *table = list(csv.reader(f))
    assert len(table) == len(FORMULAS)
    ids = [row[header.index("pair_id")] for row in table]
    assert ids == ["'" + f for f in FORMULAS]  # shown as typed, after the quote that keeps it text
    for row in table:
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                float(cell)  # only a number may start like a formula (a negative margin)


def best_of_n_rows(n=12):
    subsets = ["Factuality", "Precise IF", "Math", "Safety", "Focus"]
    rows = []
    for i in range(n):
        rows.append({"id": str(i), "subset": subsets[i % 5], "prompt": f"Question {i}?",
                     "chosen": [f"A careful answer number {i}." + " more" * (i % 4)],
                     "rejected": [f"No{i}.", f"Perhaps {i}" * (1 + i % 3), f"Wrong answer {i}, sorry."]})  # fmt: skip
    for k in range(3):  # RewardBench 2's Ties rows: one prompt asked once with a reference answer and once open
        rows.append({"id": f"ref:{k}", "subset": "Ties", "prompt": f"Name a prime below {10 + k}.",
                     "chosen": [f"{2 + k}"], "rejected": [f"{4 + k}", "nine"]})  # fmt: skip
        rows.append({"id": f"tied:{k}", "subset": "Ties", "prompt": f"Name any prime below {10 + k}.",
                     "chosen": ["2", "3", f"{5 + k}"], "rejected": ["4", "six"]})  # fmt: skip
    return rows


def scores_of(scorer, rows):
    """Every row's chosen and rejected scores as /score gives them (one request per prompt)."""
    out = []
    for r in rows:
        s = scorer.score([{"role": "user", "content": r["prompt"]}], [*r["chosen"], *r["rejected"]]).scores
        out.append((np.asarray(s[: len(r["chosen"])]), np.asarray(s[len(r["chosen"]) :])))
    return out


def test_a_best_of_n_file_scores_as_rewardbench_2_does(tmp_path, fake_scorer):
    rows = best_of_n_rows()
    out = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "rb2.jsonl", rows))
    found = out["report"]
    assert found["layout"] == "best_of_n"
    scores = scores_of(fake_scorer, rows)
    correct = [c.min() > r.max() for c, r in scores]
    assert found["prompts"]["accuracy"]["n"] == len(rows)
    assert found["accuracy"] == pytest.approx(np.mean(correct))
    theirs = leaderboards.rewardbench2_scores([r["subset"] for r in rows], [r["id"] for r in rows],
                                              [c for c, _ in scores], [r for _, r in scores])  # fmt: skip
    assert found["prompts"]["rewardbench2"]["subsets"] == pytest.approx(theirs["subsets"])
    assert found["prompts"]["rewardbench2"]["overall"] == pytest.approx(theirs["overall"])
    # every chosen x rejected pair is a row, with the model's probability for it
    assert found["pairs"] == sum(len(r["chosen"]) * len(r["rejected"]) for r in rows)
    pairs = {p["pair_id"]: p for p in found["per_pair"]}
    c, r = scores[0]
    assert pairs["0/c1r2"]["margin"] == pytest.approx(c[0] - r[1])
    assert pairs["0/c1r2"]["probability"] == pytest.approx(preference_probability(c[0] - r[1]))
    assert {"ece", "brier", "log_loss"} <= found.keys()
    # RewardBench's own results file, one score per subset
    written = json.loads(open(out["rewardbench_file"], encoding="utf-8").read())
    assert written["model_type"] == "Custom Classifier"
    assert {k: written[k] for k in theirs["subsets"]} == pytest.approx(theirs["subsets"])
    text = summary_text(found, "rb2.jsonl")
    assert f"of {len(rows)} prompts" in text and "Ties subset" in text
    # a picked pair reads back its own texts
    st = {"texts": out["texts"], "offsets": out["offsets"],
          "pairs": {p["pair_id"]: [p["group"], int(a), int(b)] for p, a, b in
                    zip(found["per_pair"], out["frame"]["chosen_index"], out["frame"]["rejected_index"])}}  # fmt: skip
    texts = pair_texts(st, "tied:1/c3r2")
    assert texts["chosen"] == "6" and texts["rejected"] == "six"
    assert texts["messages"] == [{"role": "user", "content": "Name any prime below 11."}]


def rm_bench_rows(n=8):
    domains = ["chat", "math", "code", "safety-refuse"]
    rows = []
    for i in range(n):
        rows.append({"id": i, "domain": domains[i % 4], "prompt": f"Task {i}",
                     "chosen": [f"Right {i}.", f"Right {i}, in plain detail." * 2, f"**Right** {i}\n- detail"],
                     "rejected": [f"Wrong {i}.", f"Wrong {i}, in plain detail." * (1 + i % 2),
                                  f"**Wrong** {i}\n- more"]})  # fmt: skip
    return rows


def test_an_rm_bench_file_gives_its_easy_normal_hard(tmp_path, fake_scorer):
    rows = rm_bench_rows()
    out = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "rm.jsonl", rows))
    found = out["report"]
    assert found["layout"] == "rm_bench"
    scores = scores_of(fake_scorer, rows)
    chosen, rejected = np.array([c for c, _ in scores]), np.array([r for _, r in scores])
    rm = found["prompts"]["rm_bench"]
    theirs = leaderboards.rm_bench_by_domain(chosen, rejected, [r["domain"] for r in rows])
    assert (rm["easy"], rm["normal"], rm["hard"]) == pytest.approx(
        (theirs["easy_acc"], theirs["normal_acc"], theirs["hard_acc"])
    )
    np.testing.assert_allclose(rm["matrix"], leaderboards.rm_bench(chosen, rejected)["matrix"])
    assert len(rm["wrong_objectives"]) == 3 and all(len(row) == 3 for row in rm["wrong_objectives"])
    assert found["pairs"] == 9 * len(rows) and out["rewardbench_file"] is None
    assert "**RM-Bench** (the mean of its four domains): Easy" in summary_text(found, "rm.jsonl")
    assert found["accuracy"] == pytest.approx(np.mean([theirs["easy_acc"], theirs["normal_acc"], theirs["hard_acc"]]))


def test_the_table_filters_and_the_fit_speaks(tmp_path, fake_scorer):
    rows = best_of_n_rows(30)
    out = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "rb2.jsonl", rows))
    found = out["report"]
    st = {"rows": [[p["pair_id"], p["subset"], "right" if p["right"] else "wrong", p["margin"]]
                   for p in sorted(found["per_pair"], key=lambda p: p["margin"])]}  # fmt: skip
    wrong = table_rows(st, "Math", "wrong")
    assert wrong and all(r[1] == "Math" and r[2] == "wrong" for r in wrong)
    assert [r[3] for r in wrong] == sorted(r[3] for r in wrong)  # most confident wrong first
    assert len(table_rows(st, "all subsets", "all")) == min(200, len(st["rows"]))
    fit = found["fit"]
    assert "error" not in fit, fit
    assert len(fit["objectives"]) == 19 and len(fit["what_if"]["multipliers"]) == 19
    text = fit_text(found)
    assert "held-out accuracy" in text and "McNemar" in text
    few = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "few.jsonl", best_of_n_rows(1)[:1]))
    assert "not fitted" in fit_text(few["report"])


HH_CHOSEN = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: What is {k}+2?\n\nAssistant: {a}."


@pytest.mark.parametrize("layout", ["ultrafeedback", "hh-rlhf", "saved data set"])
def test_each_layout_gives_the_scores_score_gives(layout, tmp_path, fake_scorer):
    """UltraFeedback-binarized (message lists, extra columns), hh-rlhf transcripts and a data set saved with
    save_to_disk: every pair's scores are those of scoring its conversation and two answers directly."""
    expected = []  # (messages, chosen, rejected)
    rows = []
    for k in range(6):
        if layout == "hh-rlhf":
            rows.append({"chosen": HH_CHOSEN.format(k=k, a=k + 2), "rejected": HH_CHOSEN.format(k=k, a=k + 3)})
            messages = [{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": f"What is {k}+2?"}]  # fmt: skip
            expected.append((messages, f"{k + 2}.", f"{k + 3}."))
        else:
            user = {"role": "user", "content": f"Name {k} colours."}
            good, bad = f"Red and {k} more.", "No."
            rows.append({"prompt": user["content"], "prompt_id": f"h{k}", "score_chosen": 8.0, "score_rejected": 4.5,
                         "chosen": [user, {"role": "assistant", "content": good}],
                         "rejected": [user, {"role": "assistant", "content": bad}], "messages": [user]})  # fmt: skip
            expected.append(([user], good, bad))
    if layout == "saved data set":
        import datasets

        datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
        out = evaluate_file(fake_scorer, AppConfig(), None, str(tmp_path / "saved"), "train")
    else:
        out = evaluate_file(fake_scorer, AppConfig(), write_jsonl(tmp_path / "data.jsonl", rows))
    found = out["report"]
    assert found["pairs"] == 6 and found["layout"] == "pairs"
    for row, (messages, chosen, rejected) in zip(found["per_pair"], expected):
        s = fake_scorer.score(messages, [chosen, rejected]).scores
        assert (row["score_chosen"], row["score_rejected"]) == pytest.approx((s[0], s[1]))
    if layout != "hh-rlhf":
        assert any("Ignored" in note for note in found["meta"]["notes"])


def test_a_hub_name_without_the_hub_says_what_to_do(tmp_path, fake_scorer):
    from armorm_ui.errors import InputError

    with pytest.raises(InputError) as e:  # the tests run with HF_HUB_OFFLINE=1 (conftest)
        evaluate_file(fake_scorer, AppConfig(), None, "allenai/reward-bench-2", "test")
    assert "Could not reach the Hugging Face Hub to load allenai/reward-bench-2" in str(e.value)
    assert "save_to_disk" in str(e.value)  # what to do instead
    with pytest.raises(InputError, match="Choose a file of preference pairs, or name a Hugging Face data set"):
        evaluate_file(fake_scorer, AppConfig(), None, "  ", "train")


def test_what_a_run_reads_is_told_apart():
    """A run's key (Runs: a new choice with another key stops it and clears its report): the file wins over a data
    set named beside it; a data set is its name and split."""
    from armorm_ui.ui.evaluate import input_key, input_name

    assert input_key("/tmp/gradio/ab/pairs.jsonl", "allenai/reward-bench", "test") == (
        "file",
        "/tmp/gradio/ab/pairs.jsonl",
    )
    assert input_name(input_key("/tmp/gradio/ab/pairs.jsonl", "", "")) == "pairs.jsonl"
    assert input_key(None, " allenai/reward-bench ", " ") == ("data set", "allenai/reward-bench", "train")
    assert input_key(None, "allenai/reward-bench", "test") != input_key(None, "allenai/reward-bench", "train")
    assert input_key(None, "  ", "train") is None and input_key(None, None, None) is None
