"""Leaderboard scores against the benchmarks' own code: RewardBench 2's functions from the installed rewardbench
package (0.1.4, the v2 release), RM-Bench's compute_accuracy as a literal transcription (it is not a package)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from armorm_ui import leaderboards as lb

from .rewardbench_code import rewardbench_code


@pytest.fixture(scope="module")
def rb_utils():
    """rewardbench/utils.py of the installed package."""
    return rewardbench_code()[1]


def bon_data(rng, n: int, grid: bool):
    """n best-of-4 prompts; on a grid of half-integers, ties between completions are frequent."""
    draw = (lambda size: rng.integers(0, 4, size) / 2) if grid else (lambda size: rng.normal(size=size))
    return [draw(1) for _ in range(n)], [draw(3) for _ in range(n)]


def ties_data(rng, n: int, grid: bool):
    """Ties rows: n prompts with a ref row (1 correct) and a tied row (2-4 correct), plus a ref-only, a tied-only
    and a tied row with one correct answer; on the grid, spreads of 0 and zero margins occur."""
    draw = (lambda size: rng.integers(0, 5, size) / 2) if grid else (lambda size: rng.normal(size=size))
    ids, chosen, rejected = [], [], []
    for p in range(n):
        for kind, k in (("ref", 1), ("tied", int(rng.integers(2, 5)))):
            ids.append(f"{kind}:{p}")
            chosen.append(draw(k) + 0.5)
            rejected.append(draw(int(rng.integers(1, 4))))
    for row_id, k in ((f"ref:{n}", 1), (f"tied:{n + 1}", 3), (f"tied:{n + 2}", 1), (f"ref:{n + 2}", 1)):
        ids.append(row_id)
        chosen.append(draw(k))
        rejected.append(draw(2))
    return ids, chosen, rejected


def their_bon_results(utils, chosen, rejected, subset="Math", ids=None):
    """RewardBench 2's per-prompt results (reroll_and_score_dataset) on the unrolled rows, as run_v2.py builds
    them: one row per completion (chosen first), with the prompt's subset and id."""
    from datasets import Dataset

    rows = {"text": [], "scores": [], "subset": [], "id": []}
    for k, (c, r) in enumerate(zip(chosen, rejected)):
        for j, score in enumerate([*c, *r]):
            rows["text"].append(f"{k}/{j}")
            rows["scores"].append(float(score))
            rows["subset"].append(subset)
            rows["id"].append(ids[k] if ids else str(k))
    total = [len(c) + len(r) for c, r in zip(chosen, rejected)]
    return Dataset.from_dict(rows), total


def their_ties_score(utils, ids, chosen, rejected) -> float:
    from datasets import Dataset

    scores = [[float(x) for x in [*c, *r]] for c, r in zip(chosen, rejected)]
    data = Dataset.from_dict({"id": list(ids), "scores": scores, "num_correct": [len(c) for c in chosen]})
    return utils.process_single_model(data)[1]


@pytest.mark.parametrize("grid", [True, False])
def test_best_of_n_credit_equals_rewardbench2_own_code(rb_utils, grid):
    chosen, rejected = bon_data(np.random.default_rng(3), 300, grid)
    data, total = their_bon_results(rb_utils, chosen, rejected)
    theirs = np.asarray(rb_utils.reroll_and_score_dataset(data, total)["results"], float)
    mine = lb.best_of_n_credit(chosen, rejected)
    np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(lb.best_of_n_correct(chosen, rejected), theirs == 1.0)
    if grid:  # the data has ties, so rules that count them otherwise fail here
        assert 0 < np.sum((theirs > 0) & (theirs < 1))
        argmax_rule = np.array([float(np.argmax([*c, *r]) == 0) for c, r in zip(chosen, rejected)])
        at_least_rule = np.array([float(c[0] >= r.max()) for c, r in zip(chosen, rejected)])
        assert not np.array_equal(argmax_rule, theirs) and not np.array_equal(at_least_rule, theirs)


def test_best_of_n_hand_cases():
    chosen = [[2.0], [2.0], [2.0], [1.0], [3.0], [-1.0]]
    rejected = [[1.0, 0.0, 1.5], [2.0, 0.0, 1.0], [2.0, 2.0, 0.0], [2.0, 0.0, 0.0], [3.0, 3.0, 3.0], []]
    np.testing.assert_allclose(lb.best_of_n_credit(chosen, rejected), [1, 1 / 2, 1 / 3, 0, 1 / 4, 1])
    assert lb.best_of_n_correct(chosen, rejected).tolist() == [True, False, False, False, False, True]


@pytest.mark.parametrize("grid", [True, False])
def test_ties_score_equals_rewardbench2_own_code(rb_utils, grid):
    for seed in range(4):
        ids, chosen, rejected = ties_data(np.random.default_rng(seed), 40, grid)
        order = np.random.default_rng(seed + 10).permutation(len(ids))  # the order of rows does not matter
        ids, chosen, rejected = [ids[i] for i in order], [chosen[i] for i in order], [rejected[i] for i in order]
        mine = lb.ties_score(ids, chosen, rejected)
        assert mine["score"] == pytest.approx(their_ties_score(rb_utils, ids, chosen, rejected), abs=1e-12)
        expected = [min(c) > max(r) for c, r in zip(chosen, rejected)]
        assert mine["accurate"].tolist() == expected


def test_ties_score_hand_case(rb_utils):
    # ref: correct 2 vs incorrect {1, 0}: accurate, margin 1. tied: correct {3, 2.5} vs 1: accurate, spread 0.5,
    # margin 1.5. Preferred: 1.5 > 0.5; hard: min(1, 1.5) > 0.5; margin score tanh(1 / 0.5 - 1) = tanh(1).
    ids, chosen, rejected = ["ref:7", "tied:7"], [[2.0], [3.0, 2.5]], [[1.0, 0.0], [1.0]]
    expected = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(1.0)
    mine = lb.ties_score(ids, chosen, rejected)
    assert mine["score"] == pytest.approx(expected, abs=1e-15)
    assert mine["score"] == pytest.approx(their_ties_score(rb_utils, ids, chosen, rejected), abs=1e-15)
    # the ref row's margin shrinks to 0.25 (< the spread 0.5): preferred holds, hard fails, tanh(0.5 - 1)
    mine = lb.ties_score(ids, [[1.25], [3.0, 2.5]], rejected)
    assert mine["correctness_preferred"] == 1.0 and mine["correctness_preferred_hard"] == 0.0
    assert mine["score"] == pytest.approx(0.3 + 0.3 + 0.2 + 0.01 * math.tanh(-0.5), abs=1e-15)
    # a correct answer tied with an incorrect one is not accurate (strict), and the margin 0 is not above the spread
    mine = lb.ties_score(ids, chosen, [[1.0, 0.0], [2.5]])
    assert mine["accurate"].tolist() == [True, False] and mine["correctness_preferred"] == 0.0
    with pytest.raises(ValueError):
        lb.ties_score(["ref:1", "ref:1"], chosen, rejected)
    with pytest.raises(ValueError):
        lb.ties_score(["Ties-7", "tied:7"], chosen, rejected)


def test_rewardbench2_scores_equal_run_v2(rb_utils):
    rng = np.random.default_rng(5)
    subsets, ids, chosen, rejected = [], [], [], []
    for name in lb.RB2_SUBSETS[:-1]:
        c, r = bon_data(rng, int(rng.integers(20, 60)), grid=name != "Focus")
        subsets += [name] * len(c)
        ids += [f"{name}-{k}" for k in range(len(c))]
        chosen += c
        rejected += r
    t_ids, t_chosen, t_rejected = ties_data(rng, 30, grid=True)
    subsets, ids, chosen, rejected = (
        subsets + ["Ties"] * len(t_ids),
        ids + t_ids,
        chosen + t_chosen,
        rejected + t_rejected,
    )
    mine = lb.rewardbench2_scores(subsets, ids, chosen, rejected)
    # run_v2.py, main: per subset sum(results) / len(results), the Ties subset from process_single_model
    theirs = {}
    for name in np.unique(subsets):
        rows = [k for k, s in enumerate(subsets) if s == name]
        c, r = [chosen[k] for k in rows], [rejected[k] for k in rows]
        if name == "Ties":
            theirs[name] = their_ties_score(rb_utils, [ids[k] for k in rows], c, r)
        else:
            data, total = their_bon_results(rb_utils, c, r, name, [ids[k] for k in rows])
            results = rb_utils.reroll_and_score_dataset(data, total)["results"]
            theirs[name] = sum(results) / len(results)
    assert list(mine["subsets"]) == list(theirs)
    for name in theirs:
        assert mine["subsets"][name] == pytest.approx(theirs[name], abs=1e-12), name
    assert mine["overall"] == pytest.approx(np.mean([theirs[s] for s in lb.RB2_SUBSETS]), abs=1e-12)
    partial = lb.rewardbench2_scores(subsets[:10], ids[:10], chosen[:10], rejected[:10])
    assert partial["overall"] is None and list(partial["subsets"]) == [subsets[0]]


def rm_bench_matrix_oracle(results: list[dict]) -> np.ndarray:
    """compute_accuracy's 3x3 matrix: loops over prompts and cells with a strict >, then divided by the count."""
    acc = np.zeros((3, 3))
    for result in results:
        for i in range(len(result["score_chosen"])):
            for j in range(len(result["score_rejected"])):
                if result["score_chosen"][i] > result["score_rejected"][j]:
                    acc[i][j] += 1
    acc /= len(results)
    return acc


def rm_bench_oracle(results: list[dict]) -> dict:
    """A literal transcription of RM-Bench's scripts/utils.py, compute_accuracy (with split_dataset_by_domain):
    triangles and diagonal of the 3x3 matrix, and over rows with a domain, the domain averages."""
    if "domain" in results[0]:
        split = {d: [{k: v for k, v in x.items() if k != "domain"} for x in results if x["domain"].startswith(d)]
                 for d in ["chat", "math", "code", "safety"]}  # fmt: skip
        per_domain = {d: rm_bench_oracle(split[d]) for d in split}
        out = {d: np.mean(list(per_domain[d].values())) for d in per_domain}
        for level in ("hard_acc", "normal_acc", "easy_acc"):
            out[level] = np.mean([per_domain[d][level] for d in per_domain])
        out["total_avg_acc"] = np.mean([out[d] for d in per_domain])
        return out
    acc = rm_bench_matrix_oracle(results)
    return {"hard_acc": np.sum(np.triu(acc, 1)) / 3, "normal_acc": np.mean(np.diag(acc)),
            "easy_acc": np.sum(np.tril(acc, -1)) / 3}  # fmt: skip


def rm_bench_data(rng, n: int):
    chosen, rejected = rng.integers(0, 4, (n, 3)) / 2, rng.integers(0, 4, (n, 3)) / 2  # frequent ties
    domains = rng.choice(["chat", "math", "code", "safety-refuse", "safety-response"], n)
    return chosen, rejected, domains


def test_rm_bench_equals_their_compute_accuracy():
    chosen, rejected, _ = rm_bench_data(np.random.default_rng(2), 200)
    rows = [{"score_chosen": list(c), "score_rejected": list(r)} for c, r in zip(chosen, rejected)]
    theirs, matrix = rm_bench_oracle(rows), rm_bench_matrix_oracle(rows)
    mine = lb.rm_bench(chosen, rejected)
    np.testing.assert_array_equal(np.array(mine["matrix"]), matrix)
    assert (mine["hard"], mine["normal"], mine["easy"]) == (
        theirs["hard_acc"],
        theirs["normal_acc"],
        theirs["easy_acc"],
    )
    wrong = lb.rm_bench_wrong(chosen, rejected)
    assert wrong.shape == (200, 3, 3)
    np.testing.assert_array_equal((~wrong).sum(axis=0) / 200, matrix)
    assert wrong[5, 2, 0] == (not chosen[5, 2] > rejected[5, 0])


def test_rm_bench_by_domain_equals_their_compute_accuracy():
    chosen, rejected, domains = rm_bench_data(np.random.default_rng(4), 300)
    rows = [
        {"score_chosen": list(c), "score_rejected": list(r), "domain": d} for c, r, d in zip(chosen, rejected, domains)
    ]
    theirs = rm_bench_oracle(rows)
    mine = lb.rm_bench_by_domain(chosen, rejected, domains)
    for key, value in theirs.items():
        assert mine[key] == pytest.approx(value, abs=1e-15), key
    assert set(mine) == set(theirs) | {"per_domain"}
    safety = [d.startswith("safety") for d in domains]
    assert mine["per_domain"]["safety"] == lb.rm_bench(chosen[safety], rejected[safety])
    with pytest.raises(ValueError):
        lb.rm_bench_by_domain(chosen[:3], rejected[:3], ["chat", "math", "code"])


def test_rm_bench_hand_case():
    # chosen (1, 2, 3) against rejected (0, 1.5, 2.5): chosen i beats rejected j when i >= j, never above the
    # diagonal (plainer chosen against fancier rejected): easy 1, normal 1, hard 0. A tie counts as wrong.
    mine = lb.rm_bench([[1.0, 2.0, 3.0]], [[0.0, 1.5, 2.5]])
    assert mine["matrix"] == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert (mine["easy"], mine["normal"], mine["hard"], mine["average"]) == (1.0, 1.0, 0.0, 2 / 3)
    mine = lb.rm_bench([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], [[0.0, 1.5, 2.5], [1.0, 1.0, 1.0]])
    assert (mine["easy"], mine["normal"], mine["hard"]) == (0.5, 0.5, 0.0)
    with pytest.raises(ValueError):
        lb.rm_bench([[1.0, 2.0]], [[0.0, 1.0]])


def test_results_json_has_rewardbench_shape(tmp_path):
    text = lb.results_json("RLHFlow/ArmoRM-Llama3-8B-v0.1", {"Math": np.float64(0.5), "Ties": 0.25})
    fields = {"model": "RLHFlow/ArmoRM-Llama3-8B-v0.1", "model_type": "Custom Classifier", "chat_template": "tokenizer"}
    assert text == json.dumps({**fields, "Math": 0.5, "Ties": 0.25}, indent=4, sort_keys=True)
    path = lb.write_results(tmp_path, "RLHFlow/ArmoRM-Llama3-8B-v0.1", {"alpacaeval-easy": 0.9}, model_type="x")
    assert path == tmp_path / "eval-set" / "RLHFlow" / "ArmoRM-Llama3-8B-v0.1.json"
    assert json.loads(path.read_text())["model_type"] == "x"
    with pytest.raises(ValueError):
        lb.results_json("m", {"model": 1.0})


def test_results_json_matches_save_to_hub(rb_utils, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scores = {"Factuality": 0.625, "Ties": 0.8123456789}
    fields = {"model": "org/m", "model_type": "Custom Classifier", "chat_template": "tokenizer"}
    rb_utils.save_to_hub({**fields, **scores}, "org/m", "eval-set/", local_only=True)
    theirs = (tmp_path / "results" / "eval-set" / "org" / "m.json").read_text()
    assert lb.results_json("org/m", scores) == theirs
    assert lb.write_results(tmp_path / "mine", "org/m", scores).read_text() == theirs
