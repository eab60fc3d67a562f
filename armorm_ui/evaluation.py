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


def _row(pair_id: str, subset: str, r: ScoreResult, chosen: int = 0, rejected: int = 1) -> dict:
    row = {"pair_id": pair_id, "subset": subset, "score_chosen": float(r.scores[chosen]),
           "score_rejected": float(r.scores[rejected]), "margin": float(r.scores[chosen] - r.scores[rejected]),
           "right": bool(r.scores[chosen] > r.scores[rejected]), "tokens_chosen": int(r.candidate_tokens[chosen]),
           "tokens_rejected": int(r.candidate_tokens[rejected])}  # fmt: skip
    for i, name in enumerate(NAMES):
        row[f"{name}.chosen"] = float(r.rewards[chosen, i])
        row[f"{name}.rejected"] = float(r.rewards[rejected, i])
        row[f"{name}.gating"] = float(r.gating_output[i])
        row[f"{name}.coefficient"] = float(r.coefficients[i])
    return row


def pair_frame(pairs, results: list[ScoreResult]) -> pd.DataFrame:
    """One row per pair: id, subset, both scores, margin (chosen - rejected), right, token counts, and per objective
    the chosen and rejected rewards, the prompt's gating weight and coefficient."""
    return pd.DataFrame([_row(pair.pair_id, pair.subset, r) for pair, r in zip(pairs, results)])


def label_pairs(labels: pd.DataFrame) -> pd.DataFrame:
    """Annotation labels as preference pairs, so they share this analysis: an item where an annotator chose one
    of N candidates gives N - 1 pairs (the chosen one against each other), with the annotator as the subset."""
    rows = []
    for label in labels.itertuples():
        result = ScoreResult.from_dict(json.loads(label.result) if isinstance(label.result, str) else label.result)
        for k in range(result.n):
            if k != label.choice:
                pair_id = f"{getattr(label, 'file_id', '')}/{label.item_id}/{k}"
                rows.append(_row(pair_id, str(label.annotator), result, int(label.choice), k))
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


def report(frame: pd.DataFrame) -> dict:
    """Everything the Evaluate view shows, as JSON-able data."""
    subsets = {name: accuracy(group["right"]) for name, group in frame.groupby("subset", sort=True)}
    sections = rewardbench_sections({name: s["accuracy"] for name, s in subsets.items()})
    wrong = frame[~frame["right"].astype(bool)].sort_values("margin").head(WORST)
    objectives = objectives_table(frame)
    return {
        "pairs": len(frame),
        "overall": accuracy(frame["right"]),
        "subsets": subsets,
        "rewardbench": None if sections is None else rewardbench_summary(sections, set(subsets)),
        "margins": {
            "quantiles": {str(q): float(frame["margin"].quantile(q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "mean": float(frame["margin"].mean()),
        },  # fmt: skip
        "objectives": objectives.replace({np.nan: None}).to_dict(orient="records"),
        "length": length_view(frame),
        "worst": wrong[["pair_id", "subset", "margin", "score_chosen", "score_rejected"]].to_dict(orient="records"),
    }


def write_report(found: dict, path) -> None:
    """The report as JSON (strict: no NaN), written under a temporary name and renamed, so it is whole or absent."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(found, indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
