"""How well ArmoRM's preference probabilities are calibrated on labelled pairs, and the temperature that fixes them.

The input is the margin of each pair, score_chosen - score_rejected; the model's probability that the chosen response
is preferred is the Bradley-Terry sigmoid(margin / temperature) (explain.preference_probability). Each pair is
counted in both orders, (p, 1) and (1 - p, 0), so a file that always lists the chosen response first still has
negatives; the reliability diagram is then symmetric about 0.5.

- Reliability diagram: 10 equal-width bins on [0, 1], binned as scikit-learn's
  `sklearn.calibration.calibration_curve(y, p, n_bins=10, strategy="uniform")` bins (a probability on an inner
  edge falls in the lower bin); bins with no points are kept with count 0 and null means.
- ECE, the expected calibration error (Naeini, Cooper and Hauskrecht 2015, "Obtaining Well Calibrated Probabilities
  Using Bayesian Binning", AAAI; Guo, Pleiss, Sun and Weinberger 2017, "On Calibration of Modern Neural Networks",
  ICML): sum over bins of n_b / N * |observed frequency_b - mean probability_b| on the same bins.
- Brier score and log-loss as `sklearn.metrics.brier_score_loss` and `sklearn.metrics.log_loss` compute them
  (log-loss clips probabilities to [eps, 1 - eps], eps the float64 machine epsilon, as scikit-learn does).
- Temperature scaling (Guo et al. 2017): the one T > 0 that minimises the log-loss of sigmoid(margin / T), fitted
  on a seeded random half of the pairs and judged on the other half.

Pure numpy; scipy.optimize is imported only when a temperature is fitted.
"""

from __future__ import annotations

import numpy as np

from .explain import preference_probability

BINS = 10
MIN_PAIRS = 20
"""Fewer pairs than this and no temperature is fitted (each half would hold under 10 pairs)."""
EPS = float(np.finfo(np.float64).eps)


def _margins(margins) -> np.ndarray:
    m = np.asarray(margins, dtype=np.float64).ravel()
    if m.size == 0:
        raise ValueError("no pairs: calibration needs at least one margin (score_chosen - score_rejected)")
    if not np.isfinite(m).all():
        raise ValueError(f"{int((~np.isfinite(m)).sum())} margin(s) are not finite numbers")
    return m


def doubled(margins, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(y, p): each pair in both orders, the chosen first (p, 1) then the rejected first (1 - p, 0)."""
    p = preference_probability(_margins(margins), temperature)
    return np.concatenate([np.ones(p.size), np.zeros(p.size)]), np.concatenate([p, 1 - p])


def _bin_ids(p: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each probability, as calibration_curve's uniform strategy assigns it."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)


def _bin_stats(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = _bin_ids(p, bins)
    return (np.bincount(ids, minlength=bins), np.bincount(ids, weights=p, minlength=bins),
            np.bincount(ids, weights=y, minlength=bins))  # fmt: skip


def reliability(margins, bins: int = BINS, temperature: float = 1.0) -> dict:
    """The reliability diagram: per equal-width bin its edges, count, mean predicted probability and observed
    frequency of "preferred" (both null when the bin is empty, count 0). The non-empty bins' frequencies and means
    are calibration_curve's prob_true and prob_pred."""
    y, p = doubled(margins, temperature)
    count, p_sum, y_sum = _bin_stats(y, p, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for b in range(bins):
        n = int(count[b])
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": n,
                     "mean_probability": float(p_sum[b] / n) if n else None,
                     "frequency": float(y_sum[b] / n) if n else None})  # fmt: skip
    return {"points": int(y.size), "bins": rows}


def _ece(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> float:
    _, p_sum, y_sum = _bin_stats(y, p, bins)
    return float(np.abs(y_sum - p_sum).sum() / y.size)  # n_b/N * |y_sum/n_b - p_sum/n_b|, summed


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((y - p) ** 2))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(np.column_stack([1 - p, p]), EPS, 1 - EPS)
    return float(-np.mean(np.log(np.where(y == 1, q[:, 1], q[:, 0]))))


def scores(margins, temperature: float = 1.0) -> dict:
    """ECE, Brier score and log-loss of sigmoid(margin / temperature), each pair counted in both orders."""
    y, p = doubled(margins, temperature)
    return {"ece": _ece(y, p), "brier": _brier(y, p), "log_loss": _log_loss(y, p)}


def ece(margins, temperature: float = 1.0) -> float:
    """Expected calibration error on 10 equal-width bins, weighted by count."""
    return _ece(*doubled(margins, temperature))


def brier(margins, temperature: float = 1.0) -> float:
    """Brier score, as sklearn.metrics.brier_score_loss on the doubled arrays."""
    return _brier(*doubled(margins, temperature))


def log_loss(margins, temperature: float = 1.0) -> float:
    """Log-loss, as sklearn.metrics.log_loss on the doubled arrays."""
    return _log_loss(*doubled(margins, temperature))


def _best_inverse_temperature(m: np.ndarray) -> float | None:
    """The beta >= 0 minimising mean log(1 + exp(-beta * m)) (the doubled log-loss of sigmoid(beta * m)): the root
    of its increasing derivative, or None when that has no positive root (no wrong pair: it keeps falling; or
    the margins point the wrong way on average: beta = 0 is best)."""
    from scipy.optimize import brentq

    def slope(beta: float) -> float:
        return float(-np.mean(m * preference_probability(-beta * m)))

    if slope(0.0) >= 0 or not (m < 0).any():
        return None
    high = 1.0 / np.abs(m[m != 0]).max()
    while slope(high) < 0:
        high *= 2
    return float(brentq(slope, 0.0, high, xtol=1e-14 * high, rtol=1e-12))


def _unfitted(reason: str, fit: int = 0, held_out: int = 0) -> dict:
    return {"temperature": None, "reason": reason, "fit_pairs": fit, "held_out_pairs": held_out,
            "before": None, "after": None}  # fmt: skip


def fit_temperature(margins, seed: int = 0) -> dict:
    """Temperature scaling on a seeded random half of the pairs, judged on the other half.

    Returns {"temperature", "reason", "fit_pairs", "held_out_pairs", "before", "after"}: before and after are the
    held-out {"ece", "brier", "log_loss"} at temperature 1 (the model's own) and at the fitted one. When no
    temperature can be fitted, "temperature", "before" and "after" are None and "reason" says why."""
    m = _margins(margins)
    if m.size < MIN_PAIRS:
        return _unfitted(f"{m.size} pairs: fitting a temperature needs at least {MIN_PAIRS}")
    order = np.random.default_rng(seed).permutation(m.size)
    fit, held_out = m[order[: m.size // 2]], m[order[m.size // 2 :]]
    counts = (int(fit.size), int(held_out.size))
    if not fit.any():
        return _unfitted("every margin in the fitting half is 0: no temperature changes p = 0.5", *counts)
    beta = _best_inverse_temperature(fit)
    if beta is None:
        why = (
            "no pair in the fitting half is ordered wrong, so a smaller temperature always fits better"
            if not (fit < 0).any()
            else "the margins favour the rejected responses: no temperature > 0 helps"
        )
        return _unfitted(why, *counts)
    t = 1.0 / beta
    return {"temperature": t, "reason": None, "fit_pairs": counts[0], "held_out_pairs": counts[1],
            "before": scores(held_out), "after": scores(held_out, t)}  # fmt: skip


def calibration_report(margins, seed: int = 0) -> dict:
    """Everything as JSON-able data (plain floats, no NaN): {"pairs", "ece", "brier", "log_loss", "bins",
    "temperature", "temperature_reason"}. "bins" is reliability()'s list; "temperature" is fit_temperature()'s dict
    when a temperature was fitted and None otherwise, with "temperature_reason" saying why."""
    m = _margins(margins)
    fitted = fit_temperature(m, seed)
    return {"pairs": int(m.size), **scores(m), "bins": reliability(m)["bins"],
            "temperature": fitted if fitted["temperature"] is not None else None,
            "temperature_reason": fitted["reason"]}  # fmt: skip
