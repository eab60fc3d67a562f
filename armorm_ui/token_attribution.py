"""Which words drive a score, an objective, or the gate: token attributions by gradients, shown as words.

Every ArmoRM reward is a linear function of one hidden state (the model card: `rewards = regression_layer(h)`), so
the score and each objective are directions in that space, and the gate's coefficients depend on the conversation
only. The backend (backend/gradients.py) attributes a target to token embeddings: gradient x input, or Integrated
Gradients (Sundararajan et al. 2017), whose attributions add up to the change of the target from a baseline (zero
embeddings) to the input, up to the completeness gap reported with them.

Here, with no torch: the target a person asks for, token positions mapped back to characters (chat.py), tokens
summed into words and into the segments that leave-one-out uses (segments.py), and the rank correlation of the two
methods on those segments, so that a reader sees whether gradients and occlusion agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .attribution import attribute as leave_one_out
from .backend import TokenTarget
from .errors import InputError
from .objectives import LABELS, NAMES
from .segments import coarsen, segment

METHODS = {"integrated_gradients": "Integrated Gradients", "gradient_x_input": "gradient × input"}
DEFAULT_STEPS = 32
WORD = re.compile(r"\S+")


def parse_target(target: str = "score", objective: str | None = None) -> TokenTarget:
    """ "score"; "reward" or "coefficient" with an objective (its id, e.g. helpsteer-helpfulness, or its label)."""
    if target not in ("score", "reward", "coefficient"):
        raise InputError(f"target must be score, reward or coefficient, got {target!r}.")
    if target == "score":
        return TokenTarget("score")
    if objective in NAMES:
        return TokenTarget(target, NAMES.index(objective))
    if objective in LABELS:
        return TokenTarget(target, LABELS.index(objective))
    raise InputError(f"A {target} target needs an objective: one of {', '.join(NAMES)}; got {objective!r}.")


def target_name(target: TokenTarget) -> str:
    if target.kind == "score":
        return "score"
    return f"{LABELS[target.objective]} {target.kind}"


@dataclass(frozen=True)
class Piece:
    """A token, word or segment of one text, with its attribution."""

    text: str
    start: int
    """Characters into its text (the response, or message `message` of the conversation)."""
    end: int
    attribution: float
    message: int | None = None
    """For the conversation: the index of the message the piece belongs to; None for the response."""
    leave_one_out: float | None = None
    """For segments of the response: score (or reward) with the segment minus without it."""
    parts: tuple[tuple[str, float], ...] = ()
    """For words: the tokens summed into it, (text, attribution) each."""


@dataclass(frozen=True)
class TokenExplanation:
    target: str
    """What is explained: "score", "<objective> reward" or "<objective> coefficient"."""
    method: str
    steps: int
    explains: str
    """"response" (score and rewards) or "conversation" (coefficients)."""
    value: float
    baseline_value: float
    completeness_gap: float
    tokens: list[Piece]
    words: list[Piece]
    segments: list[Piece] = field(default_factory=list)
    spearman: float | None = None
    """Rank correlation of the segments' summed attributions with their leave-one-out effects."""

    def to_dict(self) -> dict:
        def piece(p: Piece) -> dict:
            d = {"text": p.text, "start": p.start, "end": p.end, "attribution": p.attribution}
            if p.message is not None:
                d["message"] = p.message
            if p.leave_one_out is not None:
                d["leave_one_out"] = p.leave_one_out
            if p.parts:
                d["tokens"] = [list(t) for t in p.parts]
            return d

        return {
            "target": self.target,
            "method": self.method,
            "steps": self.steps,
            "explains": self.explains,
            "value": self.value,
            "baseline_value": self.baseline_value,
            "completeness_gap": self.completeness_gap,
            "tokens": [piece(p) for p in self.tokens],
            "words": [piece(p) for p in self.words],
            "segments": [piece(p) for p in self.segments],
            "spearman_with_leave_one_out": self.spearman,
        }


def words_of(text: str, tokens: list[Piece], message: int | None = None) -> list[Piece]:
    """Tokens summed into the words (runs of non-space characters) of `text`: a token belongs to the word where
    its first non-space character is; a token of spaces only, to the word before it (else the one after)."""
    words = [(m.start(), m.end()) for m in WORD.finditer(text)]
    if not words:
        return []
    parts: list[list[Piece]] = [[] for _ in words]
    starts = np.array([a for a, _ in words])
    for t in tokens:
        stripped = len(t.text) - len(t.text.lstrip())
        at = t.start + stripped if t.text.strip() else t.start
        parts[max(int(np.searchsorted(starts, at, side="right")) - 1, 0)].append(t)
    return [Piece(text[a:b], a, b, float(sum(t.attribution for t in ts)), message,
                  parts=tuple((t.text, t.attribution) for t in ts)) for (a, b), ts in zip(words, parts)]  # fmt: skip


def segments_of(segs: list[str], tokens: list[Piece]) -> list[Piece]:
    """Tokens summed into segments (which join back to the text), by where each token's text starts."""
    bounds = np.cumsum([0] + [len(s) for s in segs])
    totals = np.zeros(len(segs))
    for t in tokens:
        stripped = len(t.text) - len(t.text.lstrip())
        at = t.start + stripped if t.text.strip() else t.start
        totals[min(int(np.searchsorted(bounds, at, side="right")) - 1, len(segs) - 1)] += t.attribution
    return [Piece(s, int(a), int(b), float(v)) for s, a, b, v in zip(segs, bounds[:-1], bounds[1:], totals)]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation where both are finite; None with fewer than three such segments or no spread."""
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(spearmanr(a[ok], b[ok]).statistic)


def explain_tokens(scorer, messages, candidate: str, target: TokenTarget, method: str = "integrated_gradients",
                   steps: int = DEFAULT_STEPS, should_stop=None, compare: bool = True) -> TokenExplanation:  # fmt: skip
    """Attribute `target` of `candidate` to the response's words (score, reward) or the conversation's
    (coefficient); for the response, beside leave-one-out on the same segments when `compare`."""
    if not isinstance(candidate, str):
        raise InputError(f"The candidate to explain must be text, got {type(candidate).__name__}.")
    prepared = scorer.prepare(messages, [candidate])  # every check of a request, before any model work
    enc, msgs = prepared.enc, prepared.messages
    if target.kind == "coefficient":
        where = scorer.encoder.conversation_tokens(enc, msgs)
        pieces = [(pos, msgs[m]["content"][a:b], a, b, m) for pos, m, a, b in where]
    else:
        where = scorer.encoder.response_tokens(enc, candidate)
        pieces = [(pos, candidate[a:b], a, b, None) for pos, a, b in where]
    if not pieces:
        raise InputError("There is no text to attribute: the response (or conversation) is empty.")
    found = scorer.attribute_tokens(enc, target, [p[0] for p in pieces], method, steps, should_stop=should_stop)
    tokens = [Piece(text, a, b, float(v), m) for (_, text, a, b, m), v in zip(pieces, found.attributions)]
    if target.kind == "coefficient":
        by_message: dict[int, list[Piece]] = {}
        for t in tokens:
            by_message.setdefault(t.message, []).append(t)
        words = [w for m, ts in sorted(by_message.items()) for w in words_of(msgs[m]["content"], ts, m)]
        segs, rho = [], None
    else:
        words = words_of(candidate, tokens)
        segs, rho = segments_of(coarsen(segment(candidate), 48), tokens), None
        if compare and len(segs) > 1:
            loo = leave_one_out(scorer, messages, candidate, should_stop=should_stop)
            effects = loo.effects if target.kind == "score" else loo.reward_effects[:, target.objective]
            if [s.text for s in segs] == loo.segments:
                segs = [Piece(s.text, s.start, s.end, s.attribution, None, None if not np.isfinite(e) else float(e))
                        for s, e in zip(segs, effects)]  # fmt: skip
                rho = spearman(np.array([s.attribution for s in segs]), np.asarray(effects, dtype=float))
    return TokenExplanation(target_name(target), method, found.steps, "conversation" if target.kind == "coefficient"
                            else "response", found.value, found.baseline_value, found.completeness_gap, tokens, words,
                            segs, rho)  # fmt: skip
