"""What one scoring call returns. Plain numpy, no torch: explain/figures/UI depend on this, not on the model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .objectives import NUM_OBJECTIVES


@dataclass(frozen=True)
class ScoreResult:
    """ArmoRM's outputs for N candidate responses to one conversation (names follow the model card)."""

    scores: np.ndarray
    """(N,) preference scores: sum_j gating_j * (rewards @ T)_j."""
    rewards: np.ndarray
    """(N, 19) objective rewards, head order (see objectives.OBJECTIVES)."""
    gating_output: np.ndarray
    """(19,) gating weights; they depend on the conversation only, so all candidates share them."""
    coefficients: np.ndarray
    """(19,) gating_output @ reward_transform_matrix.T: the weight each raw reward gets in the score."""
    reward_transform_matrix: np.ndarray
    """(19, 19) the checkpoint's transform (verbosity debiasing)."""
    prompt_tokens: int = 0
    """Tokens of the shared conversation (up to the assistant header)."""
    candidate_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(N,) tokens of each candidate's assistant turn."""

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists of floats)."""
        return {
            "scores": self.scores.tolist(),
            "rewards": self.rewards.tolist(),
            "gating_output": self.gating_output.tolist(),
            "coefficients": self.coefficients.tolist(),
            "reward_transform_matrix": self.reward_transform_matrix.tolist(),
            "prompt_tokens": int(self.prompt_tokens),
            "candidate_tokens": [int(t) for t in self.candidate_tokens],
        }

    @classmethod
    def from_dict(cls, d: dict, strict: bool = False) -> ScoreResult:
        """The inverse of to_dict. `strict`, for results read back from a file: every field must be there with the
        shape documented above and finite numbers (ValueError naming the first that is not), so that a NaN score or
        18 gating weights is refused here rather than written out or failing far from the file."""
        if strict:
            check_fields(d)
        return cls(
            scores=np.asarray(d["scores"], dtype=np.float64),
            rewards=np.asarray(d["rewards"], dtype=np.float64).reshape(-1, NUM_OBJECTIVES),
            gating_output=np.asarray(d["gating_output"], dtype=np.float64),
            coefficients=np.asarray(d["coefficients"], dtype=np.float64),
            reward_transform_matrix=np.asarray(d["reward_transform_matrix"], dtype=np.float64),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            candidate_tokens=np.asarray(d.get("candidate_tokens", []), dtype=np.int64),
        )


def check_fields(d: dict) -> None:
    """ScoreResult.from_dict(d, strict=True)'s check: KeyError for a missing field, ValueError for a bad one."""
    scores = np.asarray(d["scores"])
    if scores.ndim != 1 or not scores.size:
        raise ValueError(f"scores: expected N >= 1 numbers, got shape {scores.shape}")
    n, k = scores.shape[0], NUM_OBJECTIVES
    shapes = {"scores": (n,), "rewards": (n, k), "gating_output": (k,), "coefficients": (k,),
              "reward_transform_matrix": (k, k), "prompt_tokens": (), "candidate_tokens": (n,)}  # fmt: skip
    for name, shape in shapes.items():
        value = np.asarray(d[name])
        if value.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
        if name.endswith("tokens"):
            ok, what = value.dtype.kind in "iu" and (value >= 0).all(), "counts"
        else:
            ok, what = value.dtype.kind in "iuf" and np.isfinite(value).all(), "finite numbers"
        if not ok:
            raise ValueError(f"{name}: expected {what}, got {value.ravel()[:4].tolist()} (first values)")
