"""Two decision rules judged on the same pairs: McNemar's exact test and a bootstrap interval of the difference.

When two rules (the model's own scores and weights fitted to labels, or two runs) decide the same pairs, their
accuracies are paired: only the discordant pairs, right under one rule and wrong under the other, tell them apart.

- McNemar's test (McNemar 1947, "Note on the sampling error of the difference between correlated proportions or
  percentages", Psychometrika 12(2)), exact form: with b pairs right only under A and c right only under B, the
  two-sided binomial test of b successes in b + c trials at 1/2, p = min(1, 2 * P(X <= min(b, c))), as
  statsmodels.stats.contingency_tables.mcnemar(table, exact=True) and scipy.stats.binomtest(b, b + c) give it
  (p = 1 when b = c, and when there is no discordant pair).
- A percentile bootstrap interval of accuracy_A - accuracy_B (Efron and Tibshirani 1993, "An Introduction to the
  Bootstrap", ch. 13), resampling pairs. The difference depends only on how many resampled pairs are right only
  under A and only under B, so drawing those counts from the multinomial distribution of one resample is the same
  distribution as resampling pair indices, at the cost of one draw per resample.
"""

from __future__ import annotations

import numpy as np

from .evaluation import CONFIDENCE, accuracy

RESAMPLES = 2000


def _rights(right_a, right_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = (np.asarray(r, dtype=bool).ravel() for r in (right_a, right_b))
    if a.size != b.size:
        raise ValueError(f"the two rules must decide the same pairs: {a.size} and {b.size} decisions")
    if a.size == 0:
        raise ValueError("no pairs to compare")
    return a, b


def table(right_a, right_b) -> list[list[int]]:
    """The 2x2 table, rows A right / wrong, columns B right / wrong: [[both, only A], [only B, neither]]."""
    a, b = _rights(right_a, right_b)
    return [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: 1 when there is none."""
    from scipy.special import bdtr

    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * bdtr(min(only_a, only_b), n, 0.5)))


def bootstrap_difference(
    right_a, right_b, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy_A - accuracy_B over resampled pairs (seeded)."""
    (_, only_a), (only_b, _) = table(right_a, right_b)
    n = len(np.asarray(right_a).ravel())
    shares = np.array([only_a, only_b, n - only_a - only_b], dtype=float) / n
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def compare_rules(right_a, right_b, names: tuple[str, str] = ("model", "fitted"), seed: int = 0) -> dict:
    """Both rules' accuracies (Wilson intervals), their difference A - B with its bootstrap interval, the 2x2 table
    and McNemar's exact test, as JSON-able data: {"pairs", "a", "b", "difference", "interval", "table",
    "mcnemar"}; "a" and "b" are evaluation.accuracy()'s dicts with a "name"; "interval" is {"low", "high",
    "confidence", "resamples", "seed"}; "mcnemar" is {"only_a", "only_b", "p_value"}."""
    a, b = _rights(right_a, right_b)
    counts = table(a, b)
    only_a, only_b = counts[0][1], counts[1][0]
    low, high = bootstrap_difference(a, b, seed=seed)
    return {
        "pairs": int(a.size),
        "a": {"name": names[0], **accuracy(a)},
        "b": {"name": names[1], **accuracy(b)},
        "difference": float((only_a - only_b) / a.size),
        "interval": {"low": low, "high": high, "confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": seed},
        "table": counts,
        "mcnemar": {"only_a": only_a, "only_b": only_b, "p_value": mcnemar_exact(only_a, only_b)},
    }
