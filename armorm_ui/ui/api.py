"""The programmatic way in: /score, /attribute, /attribute_tokens and /probe, typed and documented (gradio_client, the
HTTP API, and the MCP tools with --mcp).

All run in the one model slot (concurrency_id "model") and stop when their caller goes away."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from .. import explain
from ..attribution import attribute as explain_segments
from ..errors import InputError
from ..objectives import OBJECTIVES
from ..probes import PROBES, Probe, by_names
from ..probing import AnswerProbes, probe_answer
from ..token_attribution import DEFAULT_STEPS, explain_tokens, parse_target
from .handlers import cancellable, friendly


def probe_choice(candidate, probes) -> tuple[int, tuple[Probe, ...]]:
    """/probe's `candidate` letter as an index and `probes` as Probes; a clear refusal for anything else. (No
    quotes in these messages: a refusal reaches API callers HTML-escaped.)"""
    try:
        index = explain.candidate_index(candidate) if isinstance(candidate, str) else None
    except ValueError:
        index = None
    if index is None:
        shown = candidate[:12] + ("…" if len(candidate) > 12 else "") if isinstance(candidate, str) else \
            type(candidate).__name__  # fmt: skip
        raise InputError(f"candidate must be a letter such as A (the first candidate) or B (the second); got {shown}.")
    if not isinstance(probes, str):
        raise InputError(f"probes must be text: all, or names separated by commas; got {type(probes).__name__}.")
    known = [p.name for p in PROBES]
    try:
        chosen = by_names(probes.strip())
    except ValueError:
        unknown = ", ".join(n.strip() for n in probes.split(",") if n.strip() and n.strip() not in known)
        raise InputError(f"probes: no probe is named {unknown}; choose all, or from {', '.join(known)}.") from None
    if not chosen:
        raise InputError(f"probes names no probe: give all, or names from {', '.join(known)}.")
    return index, chosen


def probe_one(scorer, conversation, candidates, index: int, probes: tuple[Probe, ...],
              should_stop=None) -> AnswerProbes:  # fmt: skip
    """Score the request (every refusal of a bad conversation or candidate list comes from there), check that
    candidate `index` exists, then run the probes on it."""
    base = scorer.score(conversation, candidates, should_stop)
    if index >= base.n:
        raise InputError(f"Candidate {explain.candidate_label(index)} does not exist: there are {base.n} candidates "
                         f"(A to {explain.candidate_label(base.n - 1)}).")  # fmt: skip
    return probe_answer(scorer, conversation, candidates, index, probes, should_stop, base)


def score_probabilities(scores) -> dict[str, Any]:
    """/score's `probabilities` (N x N, P[i][j] = sigmoid(s_i - s_j)) and `preferred_probability` (the
    top-ranked candidate over the second; None with one candidate)."""
    matrix = explain.preference_matrix(scores)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")  # the verdict's order: ties keep input order
    top = float(matrix[order[0], order[1]]) if len(order) > 1 else None
    return {"probabilities": matrix.tolist(), "preferred_probability": top}


def probe_probabilities(found: dict, sides: dict[str, str]) -> dict:
    """/probe's result with `preferred_probability` in each applied probe: sigmoid(delta), the probability the
    model prefers the edited response to the original, for an edit of the response; None for an edit of the
    conversation (its two scores answer different conversations, which the model never compared)."""
    for entry in found["probes"]:
        if entry.get("skipped") is None:
            answer_side = sides[entry["probe"]] == "answer"
            entry["preferred_probability"] = explain.preference_probability(entry["delta"]) if answer_side else None
    return found


def add_api(scorer) -> None:
    """Register the endpoints on the Blocks being built. Their names, type hints and docstrings are what the API
    page and the MCP tools (--mcp) show: the docstrings are written for a reader who has never seen ArmoRM."""

    async def score(conversation: list[dict], candidates: list[str]) -> dict[str, Any]:
        """Score candidate responses to a conversation with the ArmoRM reward model: which response it prefers and
        why, objective by objective. Higher scores are better; only differences between candidates of the same
        conversation are meaningful (scores are often all negative).

        Args:
            conversation: the messages, oldest first, as {"role", "content"} objects; the last is the user's turn.
            candidates: the responses to that last user turn (1 to 16 by default); equal texts get equal scores.
        Returns:
            scores: one preference score per candidate, in the order given; ranks: 1 = preferred;
            rewards: per candidate, 19 objective rewards (helpfulness, correctness, verbosity, safety, code style...,
            named in `objectives`); gating_output: 19 weights the model gives the objectives for this conversation;
            coefficients: the weights actually applied after the verbosity correction (score = rewards . coefficients);
            reward_transform_matrix: the 19x19 correction; prompt_tokens / candidate_tokens: lengths;
            probabilities: N x N, probabilities[i][j] = the probability that the model prefers candidate i to
            candidate j = 1 / (1 + exp(-(scores[i] - scores[j]))), the Bradley-Terry form ArmoRM was trained with
            (0.5 on the diagonal; probabilities[i][j] + probabilities[j][i] = 1); preferred_probability: that
            probability for the top-ranked candidate over the second (null with one candidate);
            demo_checkpoint: true when the server runs a random-weight demo model whose scores mean nothing.
        """
        result = await cancellable(scorer.score, conversation, candidates)
        return {
            **result.to_dict(),
            "objectives": [o.name for o in OBJECTIVES],
            "ranks": explain.ranks(result.scores).tolist(),
            **score_probabilities(result.scores),
            "demo_checkpoint": scorer.is_demo,
        }

    async def attribute(conversation: list[dict], candidate: str) -> dict[str, Any]:
        """Explain one response: which of its parts (sentences, list items, lines of code) raise or lower its
        ArmoRM score, found by scoring the response with each part left out, and how its score changes as it is cut
        shorter (does the score follow length?).

        Args:
            conversation: the messages, oldest first, as {"role", "content"} objects; the last is the user's turn.
            candidate: the response to that last user turn to explain.
        Returns:
            segments: the response cut into parts that join back into it exactly; score: the full response's score;
            effects: per segment, score minus the score without it (positive = that part helps);
            reward_effects: the same per segment for each of the 19 objectives; trimmed_scores / trimmed_tokens: the
            score and length of the response cut after its first 1, 2, ... segments.
        """
        found = await cancellable(explain_segments, scorer, conversation, candidate)
        return found.to_dict()

    async def attribute_tokens(
        conversation: list[dict],
        candidate: str,
        target: str = "score",
        objective: str = "",
        method: str = "integrated_gradients",
        steps: int = DEFAULT_STEPS,
    ) -> dict[str, Any]:
        """Explain one response word by word with gradients: how much each word (and token) of the response raised
        or lowered its ArmoRM score or one objective's reward, or, for a coefficient, how much each word of the
        conversation raised or lowered the weight the model gives that objective.

        Args:
            conversation: the messages, oldest first, as {"role", "content"} objects; the last is the user's turn.
            candidate: the response to that last user turn to explain.
            target: "score" (the preference score), "reward" (one objective's reward) or "coefficient" (one
                objective's weight in the score, which depends on the conversation only).
            objective: for "reward" and "coefficient", the objective's id (e.g. "helpsteer-verbosity",
                "beavertails-is_safe") or label (e.g. "Verbosity").
            method: "integrated_gradients" (attributions add up to the target's change from a zero-embedding
                baseline) or "gradient_x_input" (one backward pass, cheaper, rougher).
            steps: Integrated Gradients steps, 1 to 256 (more is closer to exact; 32 by default).
        Returns:
            target, method, steps; explains: "response" or "conversation"; value: the target for the input;
            baseline_value: the target with the attributed words' embeddings zeroed; completeness_gap: how far the
            attributions' sum is from value - baseline_value, relative to it (Integrated Gradients: near 0);
            words and tokens: each with text, start and end (characters into the response, or into message number
            `message` of the conversation) and attribution (positive = raises the target); segments: for the
            response, the parts leave-one-out uses, with the summed attribution and the leave-one-out effect;
            spearman_with_leave_one_out: rank agreement of the two methods on those segments (-1 to 1).
        """
        wanted = parse_target(target, objective or None)
        found = await cancellable(explain_tokens, scorer, conversation, candidate, wanted, method, steps)
        return found.to_dict()

    async def probe(conversation: list[dict], candidates: list[str], candidate: str = "A",
                    probes: str = "all") -> dict[str, Any]:  # fmt: skip
        """Does style alone move ArmoRM's score? Apply small fixed edits that change form, not content, to one
        response (or to its conversation), score each edited version, and split every change by objective. A reward
        model that judged only content would not move; one that favours bold text, lists, emojis, upbeat openers or
        sheer length would. The probes, by name. Edits of the response: bold (bold each paragraph's opening phrase),
        bullets (its sentences as a bullet list), header ("## Overview" on top), emojis (one after each paragraph),
        exclamations ("!" for "."), link (a closing Wikipedia link), opener ("Sure! Great question."), disclaimer
        ("As an AI language model..."), apology (an apology and partial refusal first), repeat (the whole response
        twice), padding (a closing paragraph that says nothing new), first_half (only its first half). Edits of the
        conversation, the response kept: user_agrees and user_disagrees (the user states or doubts the response's
        opening claim), brevity_system (a system prompt asks for the briefest answer). No edit touches code, links
        or existing markdown. The result: candidate (the letter edited); score (its score before any edit);
        objectives (the ids of the 19 objectives, the order of every per-objective list); probes, one entry per
        probe asked for, with probe (its name) and skipped (why it does not apply to this text, e.g. there is no
        paragraph to bold; null when it applied). An applied probe also has delta (the score after the edit minus
        before; positive means the edit raises the score), score_before, score_after, tokens_added, rank_before and
        rank_after (1 = preferred among the candidates), scores_after (every candidate's score after the edit),
        reward_part and weight_part (19 numbers each: what the change of each objective's reward, and of the weight
        the model gives that objective, adds to delta; together they add up to delta exactly; the weights move only
        when the conversation is edited), preferred_probability (for an edit of the response, the probability that
        the model prefers the edited response to the original, 1 / (1 + exp(-delta)); null for an edit of the
        conversation, whose scores answer two different conversations), sentence (the change in words) and edited
        (the edited response, or the edited conversation). demo_checkpoint is true when the server runs a
        random-weight demo model whose scores mean nothing.

        Args:
            conversation: the messages, oldest first, as {"role", "content"} objects; the last is the user's turn.
            candidates: the responses to that last user turn; all are scored, so that rank changes are exact.
            candidate: which response to edit, by letter: "A" for the first candidate, "B" for the second...
            probes: "all", or probe names from the description separated by commas, e.g. "bold,emojis,repeat".
        """
        index, chosen = probe_choice(candidate, probes)
        found = await cancellable(probe_one, scorer, conversation, candidates, index, chosen)
        out = probe_probabilities(found.to_dict(), {p.name: p.side for p in chosen})
        return {**out, "objectives": [o.name for o in OBJECTIVES], "demo_checkpoint": scorer.is_demo}

    gr.api(friendly(score), api_name="score", concurrency_id="model")
    gr.api(friendly(probe), api_name="probe", concurrency_id="model")
    gr.api(friendly(attribute_tokens), api_name="attribute_tokens", concurrency_id="model")
    gr.api(friendly(attribute), api_name="attribute", concurrency_id="model")
