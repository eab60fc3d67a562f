"""Where ArmoRM agrees with human preferences: accuracy, RewardBench sections, objectives, length.

`pair_frame` turns scored pairs into one row per pair (scores, margin, the 19 rewards of each response, gating and
coefficients, token counts); `report` computes everything from that table alone, so a report can be recomputed
from a downloaded table. A decision is right when the chosen response scores strictly higher (a tie is wrong), as
RewardBench counts it.

The statistics are scipy's formulas written out (Wilson's interval in closed form, Spearman's rho as the correlation
of average ranks), so a report costs no import of scipy.stats (about a second); only the p-value of rho takes
scipy.special's Student t, imported when it is computed.
"""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from . import leaderboards
from .explain import preference_probability
from .objectives import LABELS, NAMES
from .results import ScoreResult

CONFIDENCE = 0.95
Z = 1.959963984540054 if CONFIDENCE == 0.95 else NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
"""The two-sided normal quantile of CONFIDENCE for Wilson's interval: scipy.special.ndtri(0.975) itself (the
standard library's quantile is one unit in the last place away), so the intervals are scipy's to the bit."""
WORST = 10
"""How many of the most confident wrong decisions the report lists."""

# RewardBench v1 (allenai/reward-bench, rewardbench/constants.py): examples per subset and the sections they make.
# A section's score is the mean of its subsets' accuracies weighted by these counts (math-prm is upweighted there).
EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28, "mt-bench-med": 40,
    "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100, "refusals-offensive": 100,
    "llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46, "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136,
    "hep-cpp": 164, "hep-go": 164, "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}  # fmt: skip
SUBSET_MAPPING = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}  # fmt: skip


def _row(
    pair_id: str, subset: str, r: ScoreResult, chosen: int = 0, rejected: int = 1, group: str | None = None
) -> dict:
    margin = float(r.scores[chosen] - r.scores[rejected])
    row = {"pair_id": pair_id, "group": pair_id if group is None else group, "subset": subset,
           "chosen_index": chosen, "rejected_index": rejected, "score_chosen": float(r.scores[chosen]),
           "score_rejected": float(r.scores[rejected]), "margin": margin, "probability": preference_probability(margin),
           "right": bool(r.scores[chosen] > r.scores[rejected]), "tokens_chosen": int(r.candidate_tokens[chosen]),
           "tokens_rejected": int(r.candidate_tokens[rejected])}  # fmt: skip
    for i, name in enumerate(NAMES):
        row[f"{name}.chosen"] = float(r.rewards[chosen, i])
        row[f"{name}.rejected"] = float(r.rewards[rejected, i])
        row[f"{name}.gating"] = float(r.gating_output[i])
        row[f"{name}.coefficient"] = float(r.coefficients[i])
    return row


def _chosen_count(entry) -> int:
    """How many of an entry's scored answers are chosen ones (listed first): a Pair has one, a Comparison its own."""
    chosen = getattr(entry, "chosen", None)
    return len(chosen) if isinstance(chosen, (tuple, list)) else 1


def pair_frame(entries, results: list[ScoreResult]) -> pd.DataFrame:
    """One row per (chosen, rejected) pair: id, the prompt's group, subset, which answers (their places among the
    chosen and among the rejected), both scores, margin (chosen - rejected), the model's preference probability
    sigmoid(margin), right, token counts, and per objective the chosen and rejected rewards, the prompt's gating
    weight and coefficient. A plain pair is one row under its own id; a prompt with several answers (best-of-N,
    RM-Bench) gives every chosen x rejected pair, named `id/cIrJ` (1-based) and grouped under the prompt's id."""
    rows = []
    for entry, r in zip(entries, results):
        key = getattr(entry, "comparison_id", None) or entry.pair_id
        k = _chosen_count(entry)
        single = k == 1 and r.n == 2
        for i in range(k):
            for j in range(r.n - k):
                pair_id = key if single else f"{key}/c{i + 1}r{j + 1}"
                row = _row(pair_id, entry.subset, r, i, k + j, group=key)
                row["chosen_index"], row["rejected_index"] = i, j
                rows.append(row)
    return pd.DataFrame(rows)


def label_pairs(labels: pd.DataFrame) -> pd.DataFrame:
    """Annotation labels as preference pairs, so they share this analysis: an item where an annotator chose one
    of N candidates gives N - 1 pairs (the chosen one against each other), with the annotator as the subset. A tie
    or an "all bad" label (a negative choice) prefers no candidate: it gives no pair."""
    rows = []
    for label in labels.itertuples():
        if int(label.choice) < 0:
            continue
        result = ScoreResult.from_dict(json.loads(label.result) if isinstance(label.result, str) else label.result)
        item = f"{getattr(label, 'file_id', '')}/{label.item_id}"  # the group: one item's pairs share answers
        for k in range(result.n):
            if k != label.choice:
                rows.append(_row(f"{item}/{k}", str(label.annotator), result, int(label.choice), k, group=item))
    return pd.DataFrame(rows)


def wilson(k: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson's score interval for k of n (no continuity correction), as scipy's
    binomtest(k, n).proportion_ci(method="wilson") computes it (Newcombe 1998): exactly 0 at k = 0, 1 at k = n."""
    p = k / n
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else center - delta), (1.0 if k == n else center + delta)


def accuracy(right) -> dict:
    """Share of right decisions with its Wilson interval."""
    right = np.asarray(right, dtype=bool)
    n, k = int(right.size), int(right.sum())
    if n == 0:
        return {"n": 0, "right": 0, "accuracy": None, "low": None, "high": None}
    low, high = wilson(k, n)
    return {"n": n, "right": k, "accuracy": k / n, "low": float(low), "high": float(high)}


def spearman(a, b) -> tuple[float, float]:
    """(rho, two-sided p-value) as scipy.stats.spearmanr gives them: the correlation of average ranks, and the
    Student t test of rho with n - 2 degrees of freedom."""
    from scipy.special import stdtr

    ranked = np.vstack([pd.Series(np.asarray(x, dtype=float)).rank(method="average").to_numpy() for x in (a, b)])
    rho = np.corrcoef(ranked)[1, 0]
    dof = ranked.shape[1] - 2
    with np.errstate(divide="ignore"):
        t = rho * np.sqrt((dof / ((rho + 1.0) * (1.0 - rho))).clip(0))
    return float(rho), float(2 * stdtr(dof, -np.abs(t)))


def rewardbench_sections(per_subset: dict[str, float]) -> dict[str, float] | None:
    """RewardBench's section scores from per-subset accuracies (its calculate_scores_per_section), or None when
    no subset is one of RewardBench's."""
    if not set(per_subset) & set(EXAMPLE_COUNTS):
        return None
    sections = {}
    for section, subsets in SUBSET_MAPPING.items():
        present = [s for s in subsets if s in per_subset]
        total = sum(EXAMPLE_COUNTS[s] for s in present)
        sections[section] = sum(per_subset[s] * EXAMPLE_COUNTS[s] for s in present) / total if total else 0
    return sections


def rewardbench_summary(sections: dict[str, float], subsets: set[str]) -> dict:
    """The sections this data covers (a section without any of its subsets is None, not RewardBench's 0), and
    their mean, RewardBench's overall score when all four are covered."""
    covered = {name: (score if set(SUBSET_MAPPING[name]) & subsets else None) for name, score in sections.items()}
    scores = [v for v in covered.values() if v is not None]
    return {"sections": covered, "score": float(np.mean(scores)), "complete": len(scores) == len(SUBSET_MAPPING)}


def objective_contributions(frame: pd.DataFrame) -> np.ndarray:
    """(pairs, 19): what each objective adds to the margin, coefficient x (chosen reward - rejected reward); the
    19 add up to the margin."""
    chosen = frame[[f"{n}.chosen" for n in NAMES]].to_numpy()
    rejected = frame[[f"{n}.rejected" for n in NAMES]].to_numpy()
    return frame[[f"{n}.coefficient" for n in NAMES]].to_numpy() * (chosen - rejected)


def objectives_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per objective: how often it alone would pick the chosen response (higher reward), and its mean contribution
    to the margin over right and over wrong decisions."""
    chosen = frame[[f"{n}.chosen" for n in NAMES]].to_numpy()
    rejected = frame[[f"{n}.rejected" for n in NAMES]].to_numpy()
    contrib = objective_contributions(frame)
    right = frame["right"].to_numpy(bool)

    def mean(rows):
        return contrib[rows].mean(axis=0) if rows.any() else np.full(len(NAMES), np.nan)

    return pd.DataFrame({"objective": NAMES, "label": LABELS, "alone_right": (chosen > rejected).mean(axis=0),
                         "contribution_when_right": mean(right), "contribution_when_wrong": mean(~right)})  # fmt: skip


def length_view(frame: pd.DataFrame) -> dict:
    """Accuracy when the chosen response is the longer one (in tokens), the shorter one, or the same length; and the
    Spearman correlation between the score margin and the length difference."""
    diff = (frame["tokens_chosen"] - frame["tokens_rejected"]).to_numpy()
    right = frame["right"].to_numpy(bool)
    out = {"chosen_longer": accuracy(right[diff > 0]), "chosen_shorter": accuracy(right[diff < 0]),
           "same_length": accuracy(right[diff == 0])}  # fmt: skip
    varies = len(frame) > 2 and np.ptp(diff) > 0 and np.ptp(frame["margin"]) > 0
    rho = spearman(frame["margin"], diff) if varies else None
    out["margin_vs_length"] = {"spearman": rho[0], "p_value": rho[1]} if rho else None
    return out


LENGTH_MATCH = 0.1
"""Pairs whose answers differ in length by at most this share of the longer one count as length-matched."""


def baselines(frame: pd.DataFrame) -> dict:
    """What length alone explains: the accuracy of the rule "pick the longer answer" (in tokens; equal lengths count
    as wrong, as a tie of scores does), and the model's accuracy on the length-matched pairs, where that rule cannot
    help. RewardBench's alpacaeval subsets are solved by the first (allenai/reward-bench#267)."""
    longer = frame["tokens_chosen"].to_numpy() > frame["tokens_rejected"].to_numpy()
    lengths = frame[["tokens_chosen", "tokens_rejected"]].to_numpy()
    matched = np.abs(lengths[:, 0] - lengths[:, 1]) <= LENGTH_MATCH * lengths.max(axis=1)
    return {"length_only": accuracy(longer), "length_matched": accuracy(frame["right"].to_numpy(bool)[matched])}


def prompt_scores(frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Per prompt (group), in the file's order: (group, subset, chosen answers' scores, rejected answers' scores)."""
    out = []
    for group, rows in frame.groupby("group", sort=False):
        chosen = rows.drop_duplicates("chosen_index").sort_values("chosen_index")["score_chosen"].to_numpy()
        rejected = rows.drop_duplicates("rejected_index").sort_values("rejected_index")["score_rejected"].to_numpy()
        out.append((str(group), str(rows["subset"].iloc[0]), chosen, rejected))
    return out


def _rm_bench_cells(frame: pd.DataFrame, top: int = 3) -> list[list[list[str]]]:
    """RM-Bench's 3x3 cells (chosen style i, rejected style j): the objectives that pull hardest against the chosen
    answer over the cell's wrong decisions (their mean contribution to the margin, most negative first)."""
    contrib = objective_contributions(frame)
    wrong = ~frame["right"].to_numpy(bool)
    ci, rj = frame["chosen_index"].to_numpy(), frame["rejected_index"].to_numpy()
    cells = []
    for i in range(3):
        row = []
        for j in range(3):
            rows = wrong & (ci == i) & (rj == j)
            mean = contrib[rows].mean(axis=0) if rows.any() else np.zeros(len(NAMES))
            row.append([LABELS[k] for k in np.argsort(mean)[:top] if mean[k] < 0])
        cells.append(row)
    return cells


def _rm_bench_report(frame: pd.DataFrame, prompts: list) -> dict:
    """RM-Bench's Easy / Normal / Hard and 3x3 matrix over every prompt; where all four of its domains (the subsets)
    are present, Easy / Normal / Hard are its own means over the domains (compute_accuracy per domain), as the
    paper reports them; else the pooled ones, said so."""
    chosen = np.array([c for _, _, c, _ in prompts])
    rejected = np.array([r for _, _, _, r in prompts])
    found = {**leaderboards.rm_bench(chosen, rejected), "styles": list(leaderboards.RM_BENCH_STYLES),
             "wrong_objectives": _rm_bench_cells(frame), "by_domain": None}  # fmt: skip
    domains = [s for _, s, _, _ in prompts]
    if all(any(d.startswith(name) for d in domains) for name in leaderboards.RM_BENCH_DOMAINS):
        by_domain = leaderboards.rm_bench_by_domain(chosen, rejected, domains)
        found.update(easy=by_domain["easy_acc"], normal=by_domain["normal_acc"], hard=by_domain["hard_acc"],
                     average=by_domain["total_avg_acc"], by_domain=by_domain)  # fmt: skip
    return found


def prompt_report(frame: pd.DataFrame, layout: str) -> dict | None:
    """For files with several answers per prompt (best-of-N, RM-Bench), the scores over prompts; None for plain
    pairs. `accuracy`: the share of prompts whose every chosen answer scores strictly above every rejected one
    (RewardBench 2's best-of-N rule), overall and per subset; `rewardbench2`: RewardBench 2's own per-subset scores
    (its 1/k credit for a tie at the top, its Ties rule for a subset named Ties); `ties`: that Ties score and its
    parts; `rm_bench`: RM-Bench's Easy / Normal / Hard, its matrix and the objectives behind each cell's wrong
    decisions."""
    if layout == "pairs":
        return None
    prompts = prompt_scores(frame)
    correct = np.array([c.min() > r.max() for _, _, c, r in prompts], bool)
    subsets = np.array([s for _, s, _, _ in prompts], object)
    found = {"accuracy": accuracy(correct),
             "subsets": {str(s): accuracy(correct[subsets == s]) for s in sorted(set(subsets))},
             "rewardbench2": None, "ties": None, "rm_bench": None, "notes": []}  # fmt: skip
    ids, chosen, rejected = [g for g, *_ in prompts], [c for *_, c, _ in prompts], [r for *_, r in prompts]
    if layout == "rm_bench":
        found["rm_bench"] = _rm_bench_report(frame, prompts)
        return found
    ties = [k for k, s in enumerate(subsets) if str(s).lower() == "ties"]
    try:
        found["rewardbench2"] = leaderboards.rewardbench2_scores(subsets, ids, chosen, rejected)
        if ties:
            pick = [ids[k] for k in ties], [chosen[k] for k in ties], [rejected[k] for k in ties]
            found["ties"] = {k: v for k, v in leaderboards.ties_score(*pick).items() if k != "accurate"}
    except ValueError as e:  # a Ties subset whose ids are not RewardBench 2's "ref:<n>" / "tied:<n>"
        found["notes"].append(f"RewardBench 2's scores were not computed: {e}.")
    return found


def fitted_weights(frame: pd.DataFrame, seed: int = 0) -> dict:
    """Weights fitted to the labels (fitting.fit_weights: logistic regression on the 19 reward differences,
    cross-validated), shaped for the report: held-out accuracy of the fitted weights and of the model's own rule,
    per objective the fitted weight beside the model's mean coefficient, the what-if multipliers that bring the
    model closest to the fitted weights, and the paired comparison of the two rules (McNemar, bootstrap). With too
    few pairs or nothing to fit, {"error": why}."""
    from .fitting import fit_weights

    chosen = frame[[f"{n}.chosen" for n in NAMES]].to_numpy()
    rejected = frame[[f"{n}.rejected" for n in NAMES]].to_numpy()
    coefficients = frame[[f"{n}.coefficient" for n in NAMES]].to_numpy()
    try:
        fit = fit_weights(chosen, rejected, frame["margin"].to_numpy(), coefficients, seed, frame["group"].to_numpy())
    except ValueError as e:
        return {"error": str(e)}
    paired = fit["paired"]
    return {"pairs": fit["pairs"], "folds": fit["folds"], "C": fit["C"], "weights": fit["weights"],
            "objectives": fit["comparison"]["objectives"], "cosine": fit["comparison"]["cosine"],
            "fitted_accuracy": fit["accuracy"]["fitted"]["accuracy"],
            "model_accuracy": fit["accuracy"]["model"]["accuracy"], "what_if": fit["what_if"],
            "paired": {"difference": -paired["difference"], "low": -paired["interval"]["high"],
                       "high": -paired["interval"]["low"], "p_value": paired["mcnemar"]["p_value"],
                       "table": paired["table"], "mcnemar": paired["mcnemar"]}}  # fmt: skip


def headline_accuracy(frame: pd.DataFrame, prompts: dict | None) -> float | None:
    """The one number a file is judged by: the share of right pairs; for best-of-N files the share of prompts
    whose chosen answer beats every rejected one; for RM-Bench its average of Easy, Normal and Hard."""
    if prompts is None:
        return accuracy(frame["right"])["accuracy"]
    return prompts["rm_bench"]["average"] if prompts["rm_bench"] else prompts["accuracy"]["accuracy"]


def report(frame: pd.DataFrame, meta: dict | None = None, layout: str = "pairs", seed: int = 0) -> dict:
    """Everything the Evaluate view shows, as JSON-able data, computed from the per-pair table alone: accuracy
    overall and per subset with the length baselines beside each, the model's preference probability per pair and
    how well calibrated it is, margins, objectives, length, the most confident wrong decisions, for prompts with
    several answers the accuracy over prompts (and RM-Bench's Easy / Normal / Hard), and weights fitted to the
    labels. `meta` names what made it (model, revision, dtype, file and its SHA-256)."""
    from .calibration import calibration_report

    subsets = {name: {**accuracy(group["right"]), **baselines(group)} for name, group in frame.groupby("subset")}
    sections = rewardbench_sections({name: s["accuracy"] for name, s in subsets.items()})
    wrong = frame[~frame["right"].astype(bool)].sort_values("margin").head(WORST)
    objectives = objectives_table(frame)
    calibration = calibration_report(frame["margin"].to_numpy(), seed=seed)
    prompts = prompt_report(frame, layout)
    found = {
        "meta": meta or {},
        "layout": layout,
        "pairs": len(frame),
        "accuracy": headline_accuracy(frame, prompts),
        "overall": accuracy(frame["right"]),
        "baselines": baselines(frame),
        "subsets": subsets,
        "rewardbench": None if sections is None else rewardbench_summary(sections, set(subsets)),
        "ece": calibration["ece"],
        "brier": calibration["brier"],
        "log_loss": calibration["log_loss"],
        "calibration": calibration,
        "margins": {
            "quantiles": {str(q): float(frame["margin"].quantile(q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "mean": float(frame["margin"].mean()),
        },  # fmt: skip
        "objectives": objectives.replace({np.nan: None}).to_dict(orient="records"),
        "length": length_view(frame),
        "worst": wrong[["pair_id", "subset", "margin", "probability", "score_chosen", "score_rejected"]].to_dict(
            orient="records"
        ),
        "prompts": prompts,
        "fit": fitted_weights(frame, seed),
        "per_pair": frame[PER_PAIR].to_dict(orient="records"),
    }
    return found


PER_PAIR = ["pair_id", "group", "subset", "score_chosen", "score_rejected", "margin", "probability", "right",
            "tokens_chosen", "tokens_rejected"]  # fmt: skip
"""The per-pair columns the report JSON repeats (the per-pair table has every objective's numbers too)."""


def evaluation_meta(config, name: str, digest: str, notes: list[str] | None = None) -> dict:
    """What made a report: the model (hub id or folder, revision, dtype, device, a fingerprint of its weights), the
    input (file name and SHA-256, or a data set's name and fingerprint) and the reader's notes."""
    from .fingerprint import weights_fingerprint

    is_file = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    return {"model": config.model or "(demo checkpoint: random weights, scores mean nothing)",
            "revision": config.revision, "dtype": config.dtype, "device": config.device,
            "weights": weights_fingerprint(config.model, config.revision), "input": name,
            "sha256" if is_file else "dataset_fingerprint": digest, "notes": list(notes or [])}  # fmt: skip


def evaluation_summary(result: dict) -> str:
    """One line: accuracy with its interval, the pick-the-longer baseline, over prompts where there are several
    answers, and the calibration error."""
    o, length = result["overall"], result["baselines"]["length_only"]
    text = (f"accuracy {o['accuracy']:.3f} ({o['right']} of {o['n']} pairs, 95% interval {o['low']:.3f}-"
            f"{o['high']:.3f}; pick-the-longer rule {length['accuracy']:.3f})")  # fmt: skip
    rm = (result["prompts"] or {}).get("rm_bench")
    if rm:
        text += f", RM-Bench easy {rm['easy']:.3f} normal {rm['normal']:.3f} hard {rm['hard']:.3f}"
    elif result["prompts"]:
        p = result["prompts"]["accuracy"]
        text += f", {p['accuracy']:.3f} over {p['n']} prompts"
    return text + f", ECE {result['ece']:.3f}"


def write_report(found: dict, path) -> None:
    """The report as JSON (strict: no NaN), written under a temporary name and renamed, so it is whole or absent."""
    _write_whole(path, json.dumps(found, indent=2, allow_nan=False))


def _write_whole(path, text: str) -> None:
    """Write under a temporary name, then rename: the file is whole or absent."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def rewardbench_subset_scores(found: dict) -> dict[str, float] | None:
    """The per-subset scores RewardBench's results file holds: RewardBench 2's own scores for a best-of-N file of its
    subsets, the accuracy per subset for a file of RewardBench v1's subsets; None for any other file."""
    rb2 = (found.get("prompts") or {}).get("rewardbench2")
    if rb2 and set(rb2["subsets"]) & set(leaderboards.RB2_SUBSETS):
        return rb2["subsets"]
    if found.get("rewardbench") and found["layout"] == "pairs":
        return {name: s["accuracy"] for name, s in found["subsets"].items()}
    return None


def write_rewardbench_results(found: dict, path) -> bool:
    """RewardBench's own results file (leaderboards.results_json) for a RewardBench file, written whole or not at
    all; False, and nothing written, for any other file."""
    scores = rewardbench_subset_scores(found)
    if scores is None:
        return False
    _write_whole(path, leaderboards.results_json(found["meta"].get("model") or "demo", scores))
    return True
