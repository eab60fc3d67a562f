"""Scoring probes (probes.py) with the exact per-objective split of every change, for one answer or a data set.

ArmoRM gates on the hidden state at the end of the conversation, before the answer (the authors'
`modeling_custom.py`: the gating network reads the `<|eot_id|>` of the last user turn), so an edit of the answer
leaves the gating and the coefficients c unchanged, and the change of score splits exactly by objective:

    Δscore = Σ_k c_k · Δr_k                                   (answer-side probes)

An edit of the conversation moves the coefficients too (c -> c'), and the change still splits exactly:

    Δscore = Σ_k c_k · (r'_k - r_k)  +  Σ_k (c'_k - c_k) · r'_k    (reward part + weight part)

All answer-side probes of one answer go to the model in one call (Scorer.score_variants): the conversation and the
original answer are computed once, and each edit computes only the tokens after the beginning it shares with the
original. A conversation-side probe scores every candidate under the edited conversation, so its rank is exact too;
all conversation-side probes of one answer go to the model together in one more call (Scorer.score_prepared).

No torch here: the Scorer is the one way to the model; the data-set figures are numpy and scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .explain import candidate_label, ranks
from .objectives import LABELS, NUM_OBJECTIVES
from .probes import PROBES, Edit, Probe, apply
from .results import ScoreResult

__all__ = ["ProbeOutcome", "AnswerProbes", "probe_answer", "probe_item", "outcomes_from_dict", "probe_report"]


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe on one answer: the edit, and (when it applied) how the score moved, objective by objective."""

    probe: Probe
    index: int
    """The candidate the probe edited."""
    messages: list[dict]
    """The conversation after the edit (the original for answer-side probes)."""
    answer: str
    """The answer after the edit (the original for conversation-side probes)."""
    skipped: str | None = None
    """Why the probe did not apply; None when it did."""
    scores_before: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(N,) every candidate's score before."""
    scores_after: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(N,) every candidate's score after (others unchanged for an answer-side probe)."""
    reward_part: np.ndarray = field(default_factory=lambda: np.zeros(NUM_OBJECTIVES))
    """(19,) c_k · Δr_k: what each objective's reward change adds to Δscore."""
    weight_part: np.ndarray = field(default_factory=lambda: np.zeros(NUM_OBJECTIVES))
    """(19,) Δc_k · r'_k: what each coefficient change adds (zero for answer-side probes)."""
    tokens_added: int = 0
    """Tokens of conversation + answer after the edit, less before."""

    @property
    def applied(self) -> bool:
        return self.skipped is None

    @property
    def parts(self) -> np.ndarray:
        """(19,) each objective's share of Δscore; sums to `delta`."""
        return self.reward_part + self.weight_part

    @property
    def delta(self) -> float:
        return float(self.scores_after[self.index] - self.scores_before[self.index]) if self.applied else 0.0

    @property
    def rank_before(self) -> int:
        return int(ranks(self.scores_before)[self.index])

    @property
    def rank_after(self) -> int:
        return int(ranks(self.scores_after)[self.index])

    def sentence(self, top: int = 2) -> str:
        """The change in words: 'Bold key phrases raises the score by 0.012 (+9 tokens); largest parts Verbosity
        (+0.010), UF helpfulness (+0.003); the ranking stays.'"""
        if not self.applied:
            return f"{self.probe.label}: skipped ({self.skipped})."
        d = self.delta
        verb = "raises" if d > 0 else "lowers" if d < 0 else "leaves"
        amount = f" by {abs(d):.3g}" if d else " unchanged"
        order = np.argsort(-np.abs(self.parts), kind="stable")[:top]
        through = ", ".join(f"{LABELS[k]} ({self.parts[k]:+.3g})" for k in order if self.parts[k] != 0)
        text = f"{self.probe.label} {verb} the score{amount} ({self.tokens_added:+d} tokens)"
        if through and d:
            text += f"; largest parts {through}"
        if self.probe.side == "conversation":
            text += f" (rewards {self.reward_part.sum():+.3g}, weights {self.weight_part.sum():+.3g})"
        if len(self.scores_before) > 1:
            before, after = self.rank_before, self.rank_after
            text += "; the ranking stays" if before == after else f"; it moves from rank {before} to {after}"
        return text + "."

    def to_dict(self, texts: bool = True) -> dict:
        """JSON form; `texts`: include the edited conversation or answer."""
        out = {"probe": self.probe.name, "candidate": candidate_label(self.index), "skipped": self.skipped}
        if self.applied:
            out.update(delta=self.delta, score_before=float(self.scores_before[self.index]),
                       score_after=float(self.scores_after[self.index]), tokens_added=self.tokens_added,
                       rank_before=self.rank_before, rank_after=self.rank_after,
                       scores_after=self.scores_after.tolist(), reward_part=self.reward_part.tolist(),
                       weight_part=self.weight_part.tolist(), sentence=self.sentence())  # fmt: skip
            if texts:
                out["edited"] = self.answer if self.probe.side == "answer" else self.messages
        return out


@dataclass(frozen=True)
class AnswerProbes:
    """Every probe on one candidate of a request, with the request's own scores."""

    index: int
    base: ScoreResult
    outcomes: list[ProbeOutcome]

    @property
    def applied(self) -> list[ProbeOutcome]:
        return [o for o in self.outcomes if o.applied]

    @property
    def skipped(self) -> list[ProbeOutcome]:
        return [o for o in self.outcomes if not o.applied]

    def to_dict(self, texts: bool = True) -> dict:
        return {"candidate": candidate_label(self.index), "score": float(self.base.scores[self.index]),
                "probes": [o.to_dict(texts) for o in self.outcomes]}  # fmt: skip


def _too_big(scorer, edit: Edit, tokens: int) -> str | None:
    """Why the edited answer cannot be scored (the character or token limit), or None; `tokens`: the whole
    conversation with the edited answer."""
    limits = scorer.config.limits
    if len(edit.answer) > limits.max_chars:
        return f"the edited answer would pass the {limits.max_chars:,}-character limit"
    if tokens > scorer.config.max_tokens:
        return f"the edited answer would make the conversation {tokens:,} tokens, past the limit of " \
               f"{scorer.config.max_tokens:,}"  # fmt: skip
    return None


def probe_answer(scorer, messages, candidates: list[str], index: int = 0, probes: tuple[Probe, ...] = PROBES,
                 should_stop=None, base: ScoreResult | None = None) -> AnswerProbes:  # fmt: skip
    """Every probe in `probes` applied to candidate `index` and scored: answer-side edits in one model call,
    conversation-side edits together in one more (all candidates under each edited conversation). `base`: the request's
    result when already scored (else it is scored here, from the cache when it was)."""
    if not 0 <= index < len(candidates):
        raise InputError(f"Candidate {candidate_label(index)} does not exist; there are {len(candidates)} candidates.")
    base = base or scorer.score(messages, candidates, should_stop)
    messages = scorer.prepare(messages, candidates).messages
    answer = candidates[index]
    prompt_tokens = int(base.prompt_tokens)
    answer_tokens = int(base.candidate_tokens[index]) if len(base.candidate_tokens) else 0
    outcomes: dict[str, ProbeOutcome] = {}
    edits = [apply(probe, messages, answer) for probe in probes]
    answer_side = [e for e in edits if e.skipped is None and e.probe.side == "answer"]
    lengths = dict(zip(map(id, answer_side), scorer.encoder.candidate_lengths([e.answer for e in answer_side])))
    variants: list[tuple[Edit, int]] = []  # answer-side edits to score, with their token counts
    conversations: list[tuple[Edit, object]] = []  # conversation-side edits to score, prepared
    for edit in edits:
        if id(edit) in lengths:
            reason = _too_big(scorer, edit, prompt_tokens + lengths[id(edit)])
            if reason is None:
                variants.append((edit, lengths[id(edit)]))
                continue
            edit = Edit(edit.probe, messages, answer, skipped=reason)
        elif edit.skipped is None:
            try:
                conversations.append((edit, scorer.prepare(edit.messages, candidates)))
                continue
            except InputError as e:  # the edited conversation passes a limit
                edit = Edit(edit.probe, messages, answer, skipped=f"the edited conversation: {e}")
        outcomes[edit.probe.name] = ProbeOutcome(edit.probe, index, edit.messages, edit.answer, edit.skipped)
    if conversations:  # every edited conversation, all candidates under each, in one model call
        results = scorer.score_prepared([p for _, p in conversations], should_stop)
        for (edit, _), new in zip(conversations, results):
            outcomes[edit.probe.name] = _conversation_outcome(edit, index, base, new)
    if variants:
        got = scorer.score_variants(messages, answer, [e.answer for e, _ in variants], should_stop)
        c = got.coefficients  # the same before and after: the gate reads the conversation only
        for row, (edit, tokens) in enumerate(variants, start=1):
            part = c * (got.rewards[row] - got.rewards[0])
            after = base.scores.copy()
            after[index] = base.scores[index] + part.sum()
            outcomes[edit.probe.name] = ProbeOutcome(edit.probe, index, messages, edit.answer, None, base.scores,
                                                     after, part, np.zeros(NUM_OBJECTIVES),
                                                     tokens - answer_tokens)  # fmt: skip
    return AnswerProbes(index, base, [outcomes[p.name] for p in probes])


def _conversation_outcome(edit: Edit, index: int, base: ScoreResult, new: ScoreResult) -> ProbeOutcome:
    r, r2 = base.rewards[index], new.rewards[index]
    c, c2 = base.coefficients, new.coefficients
    return ProbeOutcome(edit.probe, index, edit.messages, edit.answer, None, base.scores, new.scores,
                        c * (r2 - r), (c2 - c) * r2, int(new.prompt_tokens - base.prompt_tokens))  # fmt: skip


# --------------------------------------------------------------------------------------------------- data sets


def probe_item(scorer, messages, candidates: list[str], probes: tuple[Probe, ...] = PROBES, should_stop=None):
    """(base result, JSON record) of every probe on every candidate of one item: what a probe run stores per item."""
    base = scorer.score(messages, candidates, should_stop)
    record = [probe_answer(scorer, messages, candidates, k, probes, should_stop, base).to_dict()
              for k in range(len(candidates))]  # fmt: skip
    return base, record


def outcomes_from_dict(record: list[dict], base: ScoreResult, messages: list[dict], candidates: list[str],
                       probes: tuple[Probe, ...]) -> list[ProbeOutcome]:  # fmt: skip
    """probe_item's record back as ProbeOutcomes (for the per-answer table and the report); a record that does not
    fit these candidates or probes raises ValueError, so a damaged partial line is scored again."""
    by_name = {p.name: p for p in probes}
    out = []
    if len(record) != len(candidates):
        raise ValueError("record does not match the item's candidates")
    for k, answer_record in enumerate(record):
        for d in answer_record["probes"]:
            probe = by_name[d["probe"]]
            if d.get("skipped") is not None:
                out.append(ProbeOutcome(probe, k, messages, candidates[k], str(d["skipped"])))
                continue
            after = np.asarray(d["scores_after"], dtype=np.float64)
            rp, wp = (np.asarray(d[x], dtype=np.float64) for x in ("reward_part", "weight_part"))
            if after.shape != base.scores.shape or rp.shape != (NUM_OBJECTIVES,) or wp.shape != (NUM_OBJECTIVES,):
                raise ValueError("record has the wrong shape")
            if not (np.isfinite(after).all() and np.isfinite(rp).all() and np.isfinite(wp).all()):
                raise ValueError("record has a value that is not a finite number")
            edited = d["edited"]
            msgs, answer = (messages, edited) if probe.side == "answer" else (edited, candidates[k])
            out.append(ProbeOutcome(probe, k, msgs, answer, None, base.scores, after, rp, wp, int(d["tokens_added"])))
        if {d["probe"] for d in answer_record["probes"]} != set(by_name):
            raise ValueError("record does not hold every probe of this run")
    return out


def _mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t-interval (NaN bounds for fewer than two values)."""
    from scipy import stats

    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def _rate(flags) -> dict:
    from .evaluation import wilson  # with pandas: only when a report is made, not when probing starts

    flags = np.asarray(flags, dtype=bool)
    n, k = int(flags.size), int(flags.sum())
    if n == 0:
        return {"n": 0, "k": 0, "rate": None, "low": None, "high": None}
    low, high = wilson(k, n)
    return {"n": n, "k": k, "rate": k / n, "low": float(low), "high": float(high)}


def probe_report(outcomes: list[ProbeOutcome], probes: tuple[Probe, ...], pairs: bool = False) -> dict:
    """Per probe: how often it applied, mean Δscore with a 95% interval, the share of answers it raises (with a
    Wilson interval), the mean per-objective split, mean tokens added; on preference pairs (candidate 0 chosen,
    1 rejected) the flip rate (applied to the rejected answer of a pair the model got right, it now beats the
    chosen) and the rescue rate (applied to the chosen answer of a pair the model got wrong, it now wins)."""
    report = {"probes": [], "objectives": list(LABELS), "pairs": pairs}
    for probe in probes:
        mine = [o for o in outcomes if o.probe.name == probe.name]
        done = [o for o in mine if o.applied]
        entry = {"probe": probe.name, "label": probe.label, "group": probe.group, "side": probe.side,
                 "source": probe.source, "applied": len(done), "skipped": len(mine) - len(done)}  # fmt: skip
        if done:
            deltas = np.array([o.delta for o in done])
            mean, low, high = _mean_interval(deltas)
            entry.update(mean_delta=mean, low=low, high=high, raised=_rate(deltas > 0),
                         mean_parts=np.mean([o.parts for o in done], axis=0).tolist(),
                         mean_reward_part=float(np.mean([o.reward_part.sum() for o in done])),
                         mean_weight_part=float(np.mean([o.weight_part.sum() for o in done])),
                         mean_tokens_added=float(np.mean([o.tokens_added for o in done])))  # fmt: skip
        if pairs:
            flips = [o.scores_after[1] > o.scores_after[0] for o in done
                     if o.index == 1 and o.scores_before[0] > o.scores_before[1]]  # fmt: skip
            rescues = [o.scores_after[0] > o.scores_after[1] for o in done
                       if o.index == 0 and not o.scores_before[0] > o.scores_before[1]]  # fmt: skip
            entry.update(flip=_rate(flips), rescue=_rate(rescues))
        report["probes"].append(entry)
    return report
