"""Pure math on a ScoreResult: coefficients, contributions, native scales, rankings, pairwise and what-if views.

No torch, no model: everything here runs in microseconds on the numbers a scorer returned. The identities come from
the model card: coefficients = gating_output @ reward_transform_matrix.T and score = sum(rewards * coefficients).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .objectives import HELPSTEER, NAMES, OBJECTIVES
from .results import ScoreResult


def coefficients(gating_output: np.ndarray, reward_transform_matrix: np.ndarray) -> np.ndarray:
    """(19,) the weight each raw reward gets in the score: gating @ T^T."""
    return gating_output @ reward_transform_matrix.T


def contributions(result: ScoreResult) -> np.ndarray:
    """(N, 19) rewards * coefficients; each row sums to that candidate's score."""
    return result.rewards * result.coefficients[None, :]


def top_k(coeffs: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The k objectives with the largest |coefficient|, as on the model card."""
    order = np.argsort(-np.abs(coeffs), kind="stable")[:k]
    return [(NAMES[i], float(coeffs[i])) for i in order]


def top_k_contributions(result: ScoreResult, k: int = 5) -> list[list[tuple[str, float]]]:
    """For each candidate, the k objectives that move its score most (largest |contribution|)."""
    contrib = contributions(result)
    return [[(NAMES[i], float(row[i])) for i in np.argsort(-np.abs(row), kind="stable")[:k]] for row in contrib]


@dataclass(frozen=True)
class Native:
    values: np.ndarray
    """(N, 19) native-scale values, unclamped."""
    shown: np.ndarray
    """(N, 19) the same clamped to each objective's scale, for display."""
    outside: np.ndarray
    """(N, 19) bool, True where the unclamped value falls outside the scale."""


def native(rewards: np.ndarray) -> Native:
    """Map raw rewards to each objective's native scale (bin-centre rule, objectives.Objective.to_native)."""
    rewards = np.atleast_2d(rewards)
    values = np.stack([o.to_native(rewards[:, o.index]) for o in OBJECTIVES], axis=1)
    low = np.array([o.low for o in OBJECTIVES], dtype=float)
    high = np.array([o.high for o in OBJECTIVES], dtype=float)
    return Native(values, np.clip(values, low, high), (values < low) | (values > high))


def helpsteer(rewards: np.ndarray) -> np.ndarray:
    """(N, 5) the HelpSteer objectives on their 0-4 scale: rewards * 5 - 0.5 (model card), unclamped."""
    return np.atleast_2d(rewards)[:, [o.index for o in HELPSTEER]] * 5 - 0.5


def ranks(scores: np.ndarray) -> np.ndarray:
    """(N,) 1 for the best score; ties keep input order."""
    order = np.argsort(-scores, kind="stable")
    r = np.empty(len(scores), dtype=int)
    r[order] = np.arange(1, len(scores) + 1)
    return r


def margin(scores: np.ndarray) -> float:
    """Score of the winner minus the runner-up (0 with one candidate)."""
    if len(scores) < 2:
        return 0.0
    top = np.sort(scores)[::-1]
    return float(top[0] - top[1])


def preference_probability(margin: float | np.ndarray, temperature: float = 1.0) -> float | np.ndarray:
    """P(a is preferred to b) = sigmoid((s_a - s_b) / temperature) for margin = s_a - s_b: the Bradley-Terry
    probability ArmoRM's second stage was trained on (RLHFlow/RLHF-Reward-Modeling, armo-rm/stage-2_train.py:
    BCEWithLogitsLoss on pred_chosen - pred_rejected). A number gives a float, an array an array of the same shape;
    computed from exp(-|x|), which never overflows, so a margin of any size is exact to float precision."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    x = np.asarray(margin, dtype=np.float64) / temperature
    small = np.exp(-np.abs(x))  # in (0, 1]: no overflow for any x
    p = np.where(x >= 0, 1 / (1 + small), small / (1 + small))
    return float(p) if p.ndim == 0 else p


def preference_matrix(scores: np.ndarray) -> np.ndarray:
    """(N, N) P[i, j] = P(candidate i is preferred to candidate j) = sigmoid(s_i - s_j); 0.5 on the diagonal and
    P + P.T = 1."""
    s = np.asarray(scores, dtype=np.float64)
    return preference_probability(s[:, None] - s[None, :])


def probability_text(p: float) -> str:
    """A probability as shown: two decimals, or "above 0.99" / "below 0.01" where rounding would say 1 or 0."""
    if p >= 0.995:
        return "above 0.99"
    if p < 0.005:
        return "below 0.01"
    return f"{p:.2f}"


def probability_words(p: float) -> str:
    """How sure a preference probability is, in words, judged on max(p, 1 - p) rounded as shown (two decimals):
    "close to a tie" below 0.55, "a slight preference" below 0.7, "a clear preference" below 0.9, else "a strong
    preference". Each reads after "P = 0.62:" and before "for B"."""
    p = round(max(p, 1 - p), 2)
    if p < 0.55:
        return "close to a tie"
    if p < 0.7:
        return "a slight preference"
    if p < 0.9:
        return "a clear preference"
    return "a strong preference"


def pairwise(result: ScoreResult, a: int, b: int) -> np.ndarray:
    """(19,) how each objective splits scores[a] - scores[b]: (rewards[a] - rewards[b]) * coefficients."""
    return (result.rewards[a] - result.rewards[b]) * result.coefficients


@dataclass(frozen=True)
class Verdict:
    """Who wins and why: the winner's lead over the runner-up split by objective (pairwise), largest parts named."""

    winner: int
    runner_up: int | None
    """None when only one candidate was scored."""
    margin: float
    """scores[winner] - scores[runner_up]: exactly the sum of `deltas`."""
    deltas: np.ndarray
    """(19,) pairwise(result, winner, runner_up)."""
    reasons: list[int]
    """Objectives that favour the winner most, largest first (at most k, each > 0)."""
    against: list[int]
    """The objective that favours the runner-up most, if any."""

    @property
    def probability(self) -> float | None:
        """P(winner is preferred to runner-up) = sigmoid(margin); None with one candidate."""
        return None if self.runner_up is None else preference_probability(self.margin)

    @property
    def rest(self) -> float:
        """What the objectives not named add to the margin."""
        named = self.reasons + self.against
        return float(self.margin - self.deltas[named].sum())


def verdict(result: ScoreResult, k: int = 2) -> Verdict:
    order = np.argsort(-result.scores, kind="stable")
    winner = int(order[0])
    if result.n < 2:
        return Verdict(winner, None, 0.0, np.zeros(len(NAMES)), [], [])
    runner_up = int(order[1])
    deltas = pairwise(result, winner, runner_up)
    by_size = np.argsort(-deltas, kind="stable")
    reasons = [int(i) for i in by_size[:k] if deltas[i] > 0]
    against = [int(by_size[-1])] if deltas[by_size[-1]] < 0 else []
    return Verdict(winner, runner_up, float(result.scores[winner] - result.scores[runner_up]), deltas, reasons, against)


def verdict_text(v: Verdict, labels: list[str]) -> str:
    """The verdict in words (Markdown), every figure taken from the decomposition that adds up to the margin, with
    the winner's preference probability: "**B beats C** by 0.036 (B is preferred with probability 0.51: close to a
    tie), mostly on ..."."""
    w = labels[v.winner]
    if v.runner_up is None:
        return f"**{w}** is the only candidate scored."
    r = labels[v.runner_up]
    if v.margin == 0:
        return f"**{w}** and **{r}** tie (each is preferred with probability 0.50)."
    names = [f"{OBJECTIVES[i].label} ({v.deltas[i]:+.4g})" for i in v.reasons]
    p = v.probability
    text = f"**{w} beats {r}** by {v.margin:.4g} ({w} is preferred with probability {probability_text(p)}: "
    text += probability_words(p) + ")"
    if names:
        text += ", mostly on " + " and ".join(names)
    if v.against:
        i = v.against[0]
        text += f"; {r} does better on {OBJECTIVES[i].label} ({v.deltas[i]:+.4g})"
    others = len(NAMES) - len(v.reasons) - len(v.against)
    return text + f"; the other {others} objectives add {v.rest:+.4g}."


def what_if(result: ScoreResult, weights: np.ndarray) -> np.ndarray:
    """(N,) scores with each objective's coefficient multiplied by a user weight (1 = the model's own)."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != result.coefficients.shape:
        raise ValueError(f"expected {result.coefficients.shape[0]} weights, got {weights.shape}")
    return result.rewards @ (result.coefficients * weights)


def rank_change(before: int, after: int) -> str:
    """How a candidate moved when the weights changed: ▲ 2 (up two places), ▼ 1, or = (same place)."""
    moved = int(before) - int(after)
    return "=" if moved == 0 else f"▲ {moved}" if moved > 0 else f"▼ {-moved}"


def candidate_label(k: int) -> str:
    """A, B, ..., Z, AA, AB, ...: candidate k (from 0) as every view, file and message names it."""
    label = ""
    k += 1
    while k:
        k, rest = divmod(k - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def candidate_labels(n: int) -> list[str]:
    """The labels of n candidates, in order."""
    return [candidate_label(k) for k in range(n)]


def candidate_index(label: str) -> int:
    """'A' -> 0, 'AA' -> 26: the inverse of candidate_label; ValueError for anything else."""
    label = label.strip().upper() if isinstance(label, str) else ""
    if not label or not all("A" <= ch <= "Z" for ch in label):
        raise ValueError(f"not a candidate label: {label!r}")
    k = 0
    for ch in label:
        k = k * 26 + ord(ch) - ord("A") + 1
    return k - 1
