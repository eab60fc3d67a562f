"""Which parts of a response drive its score: leave-one-out occlusion, and a length probe.

For a response split into segments (segments.py), each segment's effect on the score (and on each of the 19
rewards) is the full response's value minus the value with that segment left out. The length probe scores the
response trimmed to its first k segments. All variants are scored in one call that computes the conversation and
the full response once (Scorer.score_variants). A response of more than MAX_SEGMENTS segments is explained in
MAX_SEGMENTS runs of neighbouring segments, so that a long answer of short sentences costs a bounded number of
variants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .segments import coarsen, first, segment, without

MAX_SEGMENTS = 48
"""Most segments explained one by one (each costs two variants: left out, and trimmed after it)."""


@dataclass(frozen=True)
class Attribution:
    segments: list[str]
    score: float
    """Score of the full response."""
    rewards: np.ndarray
    """(19,) rewards of the full response."""
    effects: np.ndarray
    """(S,) score(full) - score(without segment i); NaN where leaving it out leaves no text."""
    reward_effects: np.ndarray
    """(S, 19) the same for each objective's reward."""
    trimmed_scores: np.ndarray
    """(S,) score of the first k segments, k = 1..S (the last is the full response)."""
    trimmed_tokens: np.ndarray
    """(S,) tokens of those trimmed responses."""
    found_segments: int = 0
    """Segments the response was cut into before neighbours were merged into at most MAX_SEGMENTS runs."""

    def to_dict(self) -> dict:
        def clean(a):
            return [None if not np.isfinite(x) else float(x) for x in np.ravel(a)]

        return {
            "segments": self.segments,
            "score": self.score,
            "effects": clean(self.effects),
            "reward_effects": [clean(row) for row in self.reward_effects],
            "trimmed_scores": clean(self.trimmed_scores),
            "trimmed_tokens": [int(t) for t in self.trimmed_tokens],
            "found_segments": max(self.found_segments, len(self.segments)),
        }


def attribute(scorer, messages, response: str, should_stop=None) -> Attribution:
    if not isinstance(response, str):
        raise InputError(f"The candidate to explain must be text, got {type(response).__name__}.")
    if len(response) > scorer.config.limits.max_chars:
        raise InputError(f"The candidate is {len(response):,} characters long; the limit is "
                         f"{scorer.config.limits.max_chars:,}. Shorten it.")  # fmt: skip
    found = segment(response)
    segs = coarsen(found, MAX_SEGMENTS)
    n = len(segs)
    left_out = [without(segs, i) for i in range(n)]
    trimmed = [first(segs, k) for k in range(1, n)]
    usable = [i for i, t in enumerate(left_out) if t.strip()]  # leaving out the only text leaves nothing to score
    variants = [left_out[i] for i in usable] + trimmed
    result = scorer.score_variants(messages, response, variants, should_stop=should_stop)
    full_score, full_rewards = float(result.scores[0]), result.rewards[0]
    effects = np.full(n, np.nan)
    reward_effects = np.full((n, full_rewards.shape[0]), np.nan)
    for row, i in enumerate(usable, start=1):
        effects[i] = full_score - result.scores[row]
        reward_effects[i] = full_rewards - result.rewards[row]
    t0 = 1 + len(usable)
    trimmed_scores = np.append(result.scores[t0:], full_score)
    trimmed_tokens = np.append(result.candidate_tokens[t0:], result.candidate_tokens[0])
    return Attribution(segs, full_score, full_rewards, effects, reward_effects, trimmed_scores, trimmed_tokens,
                       len(found))  # fmt: skip
