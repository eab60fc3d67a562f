"""Weights fitted to your labels: one fixed weight per objective, learnt from preference pairs, set against ArmoRM's.

ArmoRM scores a response as sum_k coefficient_k * reward_k, the coefficients depending on the prompt. Here one fixed
weight per objective is fitted to labelled pairs by Bradley-Terry logistic regression on the reward differences
x = rewards_chosen - rewards_rejected: P(chosen preferred) = sigmoid(x . w), the model ArmoRM's second stage was
trained on (RLHFlow/RLHF-Reward-Modeling, armo-rm/stage-2_train.py).

- scikit-learn's `LogisticRegression` (L2 penalty, lbfgs) fits it on each pair in both orders, (x, 1) and (-x, 0):
  both classes are then present (a file that lists the chosen response first has only one otherwise) and the
  log-likelihood is twice the Bradley-Terry one. There is no intercept: swapping a pair's order must turn p into
  1 - p, which an intercept would break (fitted on both orders it would be 0 anyway, by symmetry).
- The differences are divided by each objective's root mean square (label-free: it ignores the order), so the
  penalty treats the objectives alike; the weights are mapped back to raw rewards.
- Held-out predictions come from 5-fold cross-validation over pairs (a pair's two orders always share a fold, so
  every fold has both classes). The penalty C is chosen from a fixed grid by the held-out Bradley-Terry log-loss
  of the same folds, and the held-out decisions are those at the chosen C: choosing one of five values makes them
  at most slightly optimistic. The reported weights are refitted on all pairs at that C.
- A fitted decision is right when the fitted score difference x . w is > 0, the model's when its margin is > 0 (a
  tie is wrong, as RewardBench counts it), so paired.compare_rules can set the two rules side by side.

Sources: scikit-learn user guide, "Logistic regression" and "Cross-validation: evaluating estimator performance"
(https://scikit-learn.org/stable/modules/linear_model.html#logistic-regression,
https://scikit-learn.org/stable/modules/cross_validation.html); Bradley and Terry 1952, "Rank Analysis of
Incomplete Block Designs", Biometrika 39.
"""

from __future__ import annotations

import numpy as np

from .evaluation import accuracy
from .objectives import LABELS, NAMES
from .paired import compare_rules

FOLDS = 5
MIN_PAIRS = 20
GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Inverse penalty strengths C tried, on objective-standardised differences with both orders of each pair."""
SLIDER = (0.0, 3.0, 0.1)
"""The what-if sliders' range and step (armorm_ui/ui/compare.py): each multiplies one objective's coefficient."""


def _rewards(name: str, rewards) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(NAMES):
        raise ValueError(f"{name} must have one row per pair and {len(NAMES)} columns (one per objective), "
                         f"got shape {r.shape}")  # fmt: skip
    return r


def _inputs(chosen_rewards, rejected_rewards, model_margins, model_coefficients):
    chosen, rejected = _rewards("chosen_rewards", chosen_rewards), _rewards("rejected_rewards", rejected_rewards)
    margins = np.asarray(model_margins, dtype=np.float64).ravel()
    coef = np.asarray(model_coefficients, dtype=np.float64)
    n = chosen.shape[0]
    if rejected.shape[0] != n or margins.size != n:
        raise ValueError(f"chosen_rewards, rejected_rewards and model_margins must describe the same pairs: "
                         f"{n}, {rejected.shape[0]} and {margins.size} rows")  # fmt: skip
    if coef.shape not in ((len(NAMES),), (n, len(NAMES))):
        raise ValueError(f"model_coefficients must be ({len(NAMES)},) or ({n}, {len(NAMES)}), got {coef.shape}")
    for name, a in (("rewards", chosen), ("rewards", rejected), ("model_margins", margins), ("coefficients", coef)):
        if not np.isfinite(a).all():
            raise ValueError(f"the {name} contain values that are not finite numbers (NaN or infinite)")
    if n < MIN_PAIRS:
        raise ValueError(f"only {n} labelled pair(s): fitting {len(NAMES)} weights needs at least {MIN_PAIRS}; "
                         "label more pairs")  # fmt: skip
    diff = chosen - rejected
    if not diff.any():
        raise ValueError("the chosen and rejected responses have the same 19 rewards in every pair: nothing to fit")
    return diff, margins, coef if coef.ndim == 1 else coef.mean(axis=0)


def _folds(n: int, seed: int, groups=None) -> np.ndarray:
    """Fold of each pair: a seeded shuffle dealt round-robin, so the folds differ in size by at most one. With
    `groups` (the prompt of each pair), whole groups are dealt instead: the pairs of one prompt share answers, and
    a pair held out while another pair with its chosen answer was fitted would flatter the held-out accuracy."""
    if groups is None:
        fold = np.empty(n, dtype=int)
        fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % FOLDS
        return fold
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} pairs")
    _, group = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if group.max() + 1 < FOLDS:
        raise ValueError(f"Fitting weights needs pairs from at least {FOLDS} prompts (one fold each); these pairs "
                         f"come from {group.max() + 1}.")  # fmt: skip
    return _folds(group.max() + 1, seed)[group]


def _model(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, fit_intercept=False, solver="lbfgs", max_iter=1000, warm_start=True)


def _fit(model, x: np.ndarray) -> np.ndarray:
    """Fit on each pair in both orders; the weights on the (scaled) differences."""
    y = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    return model.fit(np.vstack([x, -x]), y).coef_[0].copy()


def _held_out_margins(x: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """(len(GRID), n): each pair's fitted score difference from the model fitted without its fold, for every C."""
    out = np.empty((len(GRID), len(x)))
    for f in range(FOLDS):
        test = fold == f
        model = _model(GRID[0])
        for i, C in enumerate(GRID):  # increasing C, warm-started from the previous solution
            model.set_params(C=C)
            out[i, test] = x[test] @ _fit(model, x[~test])
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else None


def compare_weights(fitted, model_mean) -> dict:
    """Which objectives people weigh more or less than ArmoRM. The fitted weights are scaled to the L2 norm of the
    model's mean coefficients (only their direction is comparable: the fitted scale also reflects how noisy the
    labels are), then per objective: fitted, model, difference (fitted - model) and ratio (None where the model's is
    0), largest difference first. Returns {"scale", "cosine", "objectives"}."""
    fitted, model_mean = np.asarray(fitted, dtype=float), np.asarray(model_mean, dtype=float)
    norm = np.linalg.norm(fitted)
    scale = float(np.linalg.norm(model_mean) / norm) if norm > 0 else 0.0
    scaled = fitted * scale
    rows = [{"objective": NAMES[k], "label": LABELS[k], "fitted": float(scaled[k]), "model": float(model_mean[k]),
             "difference": float(scaled[k] - model_mean[k]),
             "ratio": float(scaled[k] / model_mean[k]) if model_mean[k] != 0 else None}
            for k in range(len(NAMES))]  # fmt: skip
    rows.sort(key=lambda r: -r["difference"])
    return {"scale": scale, "cosine": _cosine(fitted, model_mean), "objectives": rows}


def _slider(values: np.ndarray) -> np.ndarray:
    low, high, step = SLIDER
    return np.round(np.clip(values, low, high) / step) * step


def _multiplier_notes(wanted: np.ndarray, model_mean: np.ndarray, fitted: np.ndarray) -> list[dict]:
    notes = []
    for k in range(len(NAMES)):
        if model_mean[k] == 0:
            note = "ArmoRM gives it no weight on average, so no multiplier can add it"
        elif fitted[k] != 0 and np.sign(fitted[k]) != np.sign(model_mean[k]):
            low, high = SLIDER[0], SLIDER[1]
            note = (f"the fitted weight and ArmoRM's mean coefficient have opposite signs; a multiplier in "
                    f"[{low:g}, {high:g}] cannot flip a sign, so it is set to {low:g} (off)")  # fmt: skip
        elif wanted[k] > SLIDER[1]:
            note = f"would need {wanted[k]:.3g}x; set to the maximum, {SLIDER[1]:g}"
        else:
            continue
        notes.append({"objective": NAMES[k], "label": LABELS[k], "note": note})
    return notes


def what_if_multipliers(fitted, model_mean) -> dict:
    """Slider settings that bring the model's mean coefficients closest to the fitted weights: multiplier_k =
    scale * fitted_k / model_mean_k, clipped to the sliders' range and rounded to their step. Scores only rank, so
    the overall scale is free: it is the one whose multipliers make model_mean * multipliers point most nearly the
    way the fitted weights do (largest cosine). Returns {"multipliers" (19, objectives' order), "scale", "cosine"
    (achieved), "cosine_at_ones" (the model's own, all sliders at 1), "notes" ([{"objective", "label", "note"}]:
    sign flips, clipped values, objectives ArmoRM gives no weight)}."""
    fitted, model_mean = np.asarray(fitted, dtype=float), np.asarray(model_mean, dtype=float)
    norm = np.linalg.norm(fitted)
    target = fitted * (np.linalg.norm(model_mean) / norm) if norm > 0 else fitted
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(model_mean != 0, target / model_mean, 1.0)
    positive = ratio[(ratio > 0) & (model_mean != 0)]
    scales = np.unique(np.concatenate([[1.0], np.geomspace(1e-2, 1e2, 401), SLIDER[1] / positive]))
    grid = _slider(scales[:, None] * ratio[None, :])
    achieved = grid * model_mean[None, :]
    norms = np.linalg.norm(achieved, axis=1) * np.linalg.norm(fitted)
    cos = np.divide(achieved @ fitted, norms, out=np.full(len(scales), -np.inf), where=norms > 0)
    top = np.flatnonzero(cos >= cos.max() - 1e-12)  # of the best, the scale nearest 1
    best = int(top[np.argmin(np.abs(np.log(scales[top])))])
    multipliers = np.where(model_mean != 0, grid[best], 1.0)
    return {"multipliers": [float(m) for m in np.round(multipliers, 10)], "scale": float(scales[best]),
            "cosine": _cosine(multipliers * model_mean, fitted), "cosine_at_ones": _cosine(model_mean, fitted),
            "notes": _multiplier_notes(scales[best] * ratio, model_mean, fitted)}  # fmt: skip


def fit_weights(chosen_rewards, rejected_rewards, model_margins, model_coefficients, seed: int = 0,
                groups=None) -> dict:  # fmt: skip
    """Fit one weight per objective to labelled pairs and judge it on held-out pairs against the model's own rule.

    chosen_rewards, rejected_rewards: (n, 19); model_margins: (n,) the model's score_chosen - score_rejected;
    model_coefficients: (n, 19) per pair or (19,) already averaged. ValueError, with a message a user can act on,
    for fewer than MIN_PAIRS pairs, mismatched shapes, non-finite values or pairs that never differ. groups: the
    prompt of each pair, so that cross-validation holds out whole prompts (pairs of one prompt share answers).

    Returns JSON-able {"pairs", "folds", "seed", "C", "grid" ([{"C", "log_loss"}], held-out), "objectives" (19
    names), "weights" (19, on raw reward differences, fitted on all pairs), "accuracy" ({"fitted", "model"}:
    evaluation.accuracy dicts, held-out), "right" ({"fitted", "model"}: per-pair held-out decisions), "comparison"
    (compare_weights), "what_if" (what_if_multipliers), "paired" (paired.compare_rules, model as A, fitted as B)}."""
    diff, margins, coef_mean = _inputs(chosen_rewards, rejected_rewards, model_margins, model_coefficients)
    rms = np.sqrt(np.mean(diff**2, axis=0))
    scale = np.where(rms > 0, rms, 1.0)
    x = diff / scale
    held_out = _held_out_margins(x, _folds(len(x), seed, groups))
    losses = np.logaddexp(0.0, -held_out).mean(axis=1)  # Bradley-Terry log-loss of the held-out pairs
    best = int(np.argmin(losses))
    weights = _fit(_model(GRID[best]), x) / scale
    right_fitted, right_model = held_out[best] > 0, margins > 0
    return {
        "pairs": len(x), "folds": FOLDS, "seed": seed, "C": GRID[best],
        "grid": [{"C": C, "log_loss": float(loss)} for C, loss in zip(GRID, losses)],
        "objectives": list(NAMES), "weights": [float(w) for w in weights],
        "accuracy": {"fitted": accuracy(right_fitted), "model": accuracy(right_model)},
        "right": {"fitted": right_fitted.tolist(), "model": right_model.tolist()},
        "comparison": compare_weights(weights, coef_mean),
        "what_if": what_if_multipliers(weights, coef_mean),
        "paired": compare_rules(right_model, right_fitted, names=("model", "fitted"), seed=seed),
    }  # fmt: skip
