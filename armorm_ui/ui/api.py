"""The programmatic way in: /score, /attribute, /attribute_tokens and /probe, typed and documented (gradio_client, the
HTTP API, and the MCP tools with --mcp).

All run in the one model slot (concurrency_id "model") and stop when their caller goes away. Each endpoint declares
its result as a TypedDict whose fields carry their descriptions (Annotated[type, "description"]), and its docstring
is its description and its parameters': the API page, view_api() and the MCP tools all read them from here. Over MCP
a result is compact JSON text (`for_mcp`)."""

# No `from __future__ import annotations` in this module: gr.api reads an endpoint's result type from its return
# annotation with inspect.signature, which leaves a string annotation unevaluated, and the API page then shows the
# result as Any.

import functools
import inspect
import json
from typing import Annotated, Any, TypedDict, get_args, get_origin, get_type_hints, is_typeddict

import gradio as gr
import numpy as np
from gradio_client.utils import python_type_to_json_schema

from .. import explain
from ..attribution import attribute as explain_segments
from ..errors import InputError
from ..objectives import NAMES, OBJECTIVES
from ..probes import PROBES, Probe, by_names
from ..probing import AnswerProbes, probe_answer
from ..results import ScoreResult
from ..token_attribution import DEFAULT_STEPS, explain_tokens, parse_target
from .handlers import caller, cancellable, friendly


class Scored(TypedDict):
    """/score's result."""

    objectives: Annotated[list[str], "the ids of the 19 objectives: the order of every per-objective list"]
    scores: Annotated[list[float], "one preference score per candidate, in the order given; higher is preferred"]
    ranks: Annotated[list[int], "per candidate: 1 for the preferred one; ties keep the order given"]
    preferred: Annotated[str, "the letter of the top-ranked candidate: A for the first, B for the second..."]
    verdict: Annotated[str, "the preference in words: by how much, how surely, and the objectives that decide it"]
    preferred_probability: Annotated[
        float | None, "the probability that the model prefers the top-ranked candidate to the second; null with one"
    ]
    probabilities: Annotated[
        list[list[float]], "N x N: [i][j] = the probability that the model prefers candidate i to j, sigmoid(s_i - s_j)"
    ]
    contributions: Annotated[
        dict[str, list[float]], "per objective id, what it adds to each candidate's score: they add up to the score"
    ]
    rewards: Annotated[list[list[float]], "per candidate, the 19 objective rewards: helpfulness, verbosity, safety..."]
    gating_output: Annotated[list[float], "the 19 weights the model gives the objectives for this conversation"]
    coefficients: Annotated[list[float], "the weights applied after the verbosity correction: score = rewards . these"]
    reward_transform_matrix: Annotated[
        list[list[float]] | None, "the model's 19 x 19 verbosity correction; null unless include_transform_matrix"
    ]
    prompt_tokens: Annotated[int, "tokens of the conversation"]
    candidate_tokens: Annotated[list[int], "tokens of each candidate's turn"]
    demo_checkpoint: Annotated[bool, "true when the server runs a random-weight demo model whose scores mean nothing"]


SCORE_FOR_MCP = ("verdict", "preferred", "preferred_probability", "scores", "ranks", "contributions", "prompt_tokens",
                 "candidate_tokens", "demo_checkpoint")  # fmt: skip
"""What the score tool returns over MCP: the verdict and the labelled contributions, not the unlabelled per-objective
lists they sum up (those are for HTTP callers); the transform matrix too when asked for."""


def score_for_mcp(result: Scored) -> dict:
    found = {k: result[k] for k in SCORE_FOR_MCP}
    if result["reward_transform_matrix"] is not None:
        found["reward_transform_matrix"] = result["reward_transform_matrix"]
    return found


class Attributed(TypedDict):
    """/attribute's result."""

    segments: Annotated[list[str], "the response cut into parts: sentences, list items, lines of code"]
    score: Annotated[float, "the full response's score"]
    effects: Annotated[list[float | None], "per segment, the score minus the score without it; positive: it helps"]
    reward_effects: Annotated[list[list[float | None]], "per segment, the same for each of the 19 objective rewards"]
    trimmed_scores: Annotated[list[float | None], "the score of the response cut after its first 1, 2, ... segments"]
    trimmed_tokens: Annotated[list[int], "the tokens of those cut responses"]


class _Piece(TypedDict):
    text: Annotated[str, "the piece of text"]
    start: Annotated[int, "where it starts: characters into the response, or into conversation message `message`"]
    end: Annotated[int, "where it ends (exclusive)"]
    attribution: Annotated[float, "how much it raises the target; negative: it lowers it"]


class Piece(_Piece, total=False):
    """A token, word or segment of the text explained."""

    message: Annotated[int, "for the conversation: the index of the message it is in"]
    leave_one_out: Annotated[float, "for a segment: the target with it minus without it"]
    tokens: Annotated[list[tuple[str, float]], "for a word: its tokens, [text, attribution] each"]


class TokensAttributed(TypedDict):
    """/attribute_tokens' result."""

    target: Annotated[str, 'what is explained: "score", "<objective> reward" or "<objective> coefficient"']
    method: Annotated[str, '"integrated_gradients" or "gradient_x_input"']
    steps: Annotated[int, "Integrated Gradients steps used"]
    explains: Annotated[str, '"response" for the score and rewards, "conversation" for a coefficient']
    value: Annotated[float, "the target for the input"]
    baseline_value: Annotated[float, "the target with the attributed words' embeddings zeroed"]
    completeness_gap: Annotated[float, "how far the attributions' sum is from value - baseline_value, relatively"]
    tokens: Annotated[list[Piece], "every token of the text explained"]
    words: Annotated[list[Piece], "every word, with the tokens summed into it"]
    segments: Annotated[list[Piece], "for the response: the parts leave-one-out uses, with its effect"]
    spearman_with_leave_one_out: Annotated[float | None, "rank agreement with leave-one-out on the segments, -1 to 1"]


class _ProbeOutcome(TypedDict):
    probe: Annotated[str, "the probe's name"]
    candidate: Annotated[str, "the letter of the candidate edited"]
    skipped: Annotated[str | None, "why the probe does not apply to this text; null when it applied"]


class ProbeOutcome(_ProbeOutcome, total=False):
    """One probe; the fields after `skipped` only when it applied."""

    delta: Annotated[float, "the score after the edit minus before; positive: the edit raises it"]
    score_before: Annotated[float, "the candidate's score before the edit"]
    score_after: Annotated[float, "its score after the edit"]
    tokens_added: Annotated[int, "tokens of conversation and response after the edit less before"]
    rank_before: Annotated[int, "its rank among the candidates before; 1 = preferred"]
    rank_after: Annotated[int, "its rank after"]
    scores_after: Annotated[list[float], "every candidate's score after the edit"]
    reward_part: Annotated[list[float], "per objective, what the change of its reward adds to delta"]
    weight_part: Annotated[list[float], "per objective, what the change of its weight adds to delta"]
    preferred_probability: Annotated[
        float | None, "the probability that the model prefers the edited response; null for a conversation edit"
    ]
    sentence: Annotated[str, "the change in words"]
    edited: Annotated[str | list[dict], "the edited response, or the edited conversation"]


class Probed(TypedDict):
    """/probe's result."""

    candidate: Annotated[str, "the letter of the candidate edited"]
    score: Annotated[float, "its score before any edit"]
    probes: Annotated[list[ProbeOutcome], "one entry per probe asked for"]
    objectives: Annotated[list[str], "the ids of the 19 objectives: the order of reward_part and weight_part"]
    demo_checkpoint: Annotated[bool, "true when the server runs a random-weight demo model whose scores mean nothing"]


def json_schema(kind) -> dict:
    """The JSON schema gr.api derives from a type (gradio_client.utils.python_type_to_json_schema), with each
    TypedDict field's description (the text in its Annotated hint) added: Gradio keeps the fields' names and types but
    drops their descriptions."""
    if is_typeddict(kind):
        properties = {}
        for name, hint in get_type_hints(kind, include_extras=True).items():
            inner, *notes = get_args(hint) if get_origin(hint) is Annotated else (hint,)
            properties[name] = {**json_schema(inner), **({"description": notes[0]} if notes else {})}
        required = [name for name in properties if name in kind.__required_keys__]
        return {"type": "object", "properties": properties, "required": required}
    if get_origin(kind) is list:
        return {"type": "array", "items": json_schema(get_args(kind)[0])}
    return python_type_to_json_schema(kind)


def gradio_docstring(doc: str) -> str:
    """`doc` with each Args/Returns item on one line. Gradio reads a docstring line by line (gradio.utils.
    get_function_description): an item's wrapped continuation lines would be dropped from a parameter's description
    and joined with ", " into the Returns text. A continuation line is one indented deeper than its item."""
    out: list[str] = []
    in_section, item_indent = False, None
    for line in inspect.cleandoc(doc).split("\n"):
        text, indent = line.strip(), len(line) - len(line.lstrip())
        if text in ("Args:", "Returns:"):
            in_section, item_indent = True, None
        elif in_section and text:
            item_indent = indent if item_indent is None else item_indent
            if indent > item_indent:
                out[-1] += " " + text
                continue
            in_section = indent == item_indent
        out.append(line)
    return "\n".join(out)


def rounded(value, digits: int = 4):
    """Every float in a JSON-like value to `digits` significant digits (ints, bools and text as they are)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def for_mcp(result: dict) -> str:
    """A result as an MCP tool returns it: JSON text, numbers to 4 significant digits (the model's outputs are bfloat16
    on a GPU, good to about 3). Gradio's MCP server sends a tool's output as str(output) (gradio/mcp.py,
    postprocess_output_data), which for a dict is Python's repr, not JSON; the MCP specification asks for a structured
    result as serialized JSON in a text content block (modelcontextprotocol.io/specification/2025-06-18/server/tools,
    "Structured Content"). Gradio 6.31's structuredContent (gr.mcp.tool(structured_output=True)) holds the text
    blocks, not the result, so it is not used."""
    return json.dumps(rounded(result), ensure_ascii=False, separators=(",", ":"))


def endpoint(fn, mcp_view=None):
    """`fn` as an API endpoint: the project's refusals as clean messages (handlers.friendly), the result as it is for
    HTTP callers and as compact JSON for MCP (`for_mcp`, of `mcp_view(result)` when given), and the docstring in the
    form Gradio reads."""
    safe = friendly(fn)

    @functools.wraps(fn)  # the signature and the result type, which gr.api reads
    async def call(*args, **kwargs):
        result = await safe(*args, **kwargs)
        if caller() != "mcp":
            return result
        return for_mcp(mcp_view(result) if mcp_view else result)

    call.__doc__ = gradio_docstring(fn.__doc__)
    return call


def document(dependency, fn, examples: dict[str, Any]) -> None:
    """Name, describe and give an example for each parameter of an endpoint made by gr.api, and give its result the
    schema of its TypedDict with the fields' descriptions. gr.api labels its components "1st", "2nd"... and gives
    neither descriptions nor examples, and no public option sets them: this sets three things on its Api components
    (label, _api_info, example_payload), which tests/test_ui_api.py checks through view_api() so that a Gradio upgrade
    that changes them fails loudly."""
    from gradio.context import get_blocks_context
    from gradio.utils import get_function_description

    blocks = get_blocks_context().blocks
    _, described, _ = get_function_description(fn)
    for block_id, name in zip(dependency["inputs"], inspect.signature(fn).parameters):
        block = blocks[block_id]
        block.label = name
        text = described.get(name, "")
        block._api_info = {**block._api_info, "additional_description": text[:1].upper() + text[1:]}
        if name in examples:
            block.example_payload = lambda value=examples[name]: value
    result = blocks[dependency["outputs"][0]]
    result.label = "result"
    result._api_info = json_schema(inspect.signature(fn).return_annotation)


def probe_choice(candidate, probes) -> tuple[int, tuple[Probe, ...]]:
    """/probe's `candidate` letter as an index and `probes` as Probes; a clear refusal for anything else."""
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


def score_result(result: ScoreResult, demo: bool, include_transform_matrix: bool = False) -> Scored:
    """/score's result for a ScoreResult: every output, the verdict, and each objective's contributions (coefficient
    times reward), labelled with its id."""
    labels = explain.candidate_labels(result.n)
    verdict = explain.verdict(result)
    contributions = explain.contributions(result)
    found = result.to_dict()
    return {
        "objectives": list(NAMES),
        "scores": found["scores"],
        "ranks": explain.ranks(result.scores).tolist(),
        "preferred": labels[verdict.winner],
        "verdict": explain.verdict_text(verdict, labels).replace("**", ""),  # plain text: no Markdown
        **score_probabilities(result.scores),
        "contributions": {name: contributions[:, i].tolist() for i, name in enumerate(NAMES)},
        "rewards": found["rewards"],
        "gating_output": found["gating_output"],
        "coefficients": found["coefficients"],
        "reward_transform_matrix": found["reward_transform_matrix"] if include_transform_matrix else None,
        "prompt_tokens": found["prompt_tokens"],
        "candidate_tokens": found["candidate_tokens"],
        "demo_checkpoint": demo,
    }


def probe_probabilities(found: dict, sides: dict[str, str]) -> dict:
    """/probe's result with `preferred_probability` in each applied probe: sigmoid(delta), the probability the
    model prefers the edited response to the original, for an edit of the response; None for an edit of the
    conversation (its two scores answer different conversations, which the model never compared)."""
    for entry in found["probes"]:
        if entry.get("skipped") is None:
            answer_side = sides[entry["probe"]] == "answer"
            entry["preferred_probability"] = explain.preference_probability(entry["delta"]) if answer_side else None
    return found


CONVERSATION_EXAMPLE = [{"role": "user", "content": "What are some synonyms for the word beautiful?"}]
CANDIDATES_EXAMPLE = ["Gorgeous, lovely, stunning, pretty.", "Sorry, I cannot answer this."]


def add_api(scorer) -> None:
    """Register the endpoints on the Blocks being built. Their names, type hints and docstrings are what the API
    page and the MCP tools (--mcp) show: the docstrings are written for a reader who has never seen ArmoRM."""

    async def score(conversation: list[dict] | str, candidates: list[str],
                    include_transform_matrix: bool = False) -> Scored:  # fmt: skip
        """Score candidate responses to a conversation with the ArmoRM reward model: which response it prefers and
        why, objective by objective. Higher scores are better; only differences between candidates of the same
        conversation are meaningful (scores are often all negative). Each of the 19 objectives (helpfulness,
        correctness, verbosity, safety, code style...) adds its contribution, the weight the model gives it for this
        conversation times the response's reward on it; a response's contributions add up to its score.

        Args:
            conversation: the user's prompt as text, or the messages, oldest first, as {"role", "content"} objects
                (roles system, user, assistant); the last is the user's turn.
            candidates: the responses to that last user turn (1 to 16 by default); equal texts get equal scores.
            include_transform_matrix: also return the model's 19 x 19 reward transform matrix (the same for every
                call; it turns the gating output into the coefficients).
        Returns:
            JSON with numbers to 4 significant digits
            verdict: which candidate the model prefers in words, by how much and on which objectives
            preferred: the letter of the top-ranked candidate (A for the first, B for the second...)
            preferred_probability: the probability that the model prefers it to the second (null with one candidate)
            scores: one preference score per candidate in the order given
            ranks: 1 for the preferred candidate
            contributions: per objective id the contribution to each candidate's score (they add up to the score)
            prompt_tokens and candidate_tokens: lengths in tokens
            demo_checkpoint: true when the server runs a random-weight demo model whose scores mean nothing
            reward_transform_matrix: only when include_transform_matrix is true
        """
        if not isinstance(include_transform_matrix, bool):
            raise InputError(
                f"include_transform_matrix must be true or false, got {type(include_transform_matrix).__name__}."
            )
        result = await cancellable(scorer.score, conversation, candidates)
        return score_result(result, scorer.is_demo, include_transform_matrix)

    async def attribute(conversation: list[dict] | str, candidate: str) -> Attributed:
        """Explain one response: which of its parts (sentences, list items, lines of code) raise or lower its
        ArmoRM score, found by scoring the response with each part left out, and how its score changes as it is cut
        shorter (does the score follow length?).

        Args:
            conversation: the user's prompt as text, or the messages, oldest first, as {"role", "content"} objects
                (roles system, user, assistant); the last is the user's turn.
            candidate: the response to that last user turn to explain.
        Returns:
            JSON with numbers to 4 significant digits
            segments: the response cut into parts that join back into it exactly
            score: the full response's score
            effects: per segment the score minus the score without it (positive = that part helps)
            reward_effects: the same per segment for each of the 19 objectives
            trimmed_scores and trimmed_tokens: the score and length of the response cut after its first 1, 2... segments
        """
        found = await cancellable(explain_segments, scorer, conversation, candidate)
        return found.to_dict()

    async def attribute_tokens(
        conversation: list[dict] | str,
        candidate: str,
        target: str = "score",
        objective: str = "",
        method: str = "integrated_gradients",
        steps: int = DEFAULT_STEPS,
    ) -> TokensAttributed:
        """Explain one response word by word with gradients: how much each word (and token) of the response raised
        or lowered its ArmoRM score or one objective's reward, or, for a coefficient, how much each word of the
        conversation raised or lowered the weight the model gives that objective.

        Args:
            conversation: the user's prompt as text, or the messages, oldest first, as {"role", "content"} objects
                (roles system, user, assistant); the last is the user's turn.
            candidate: the response to that last user turn to explain.
            target: "score" (the preference score), "reward" (one objective's reward) or "coefficient" (one
                objective's weight in the score, which depends on the conversation only).
            objective: for "reward" and "coefficient", the objective's id (e.g. "helpsteer-verbosity",
                "beavertails-is_safe") or label (e.g. "Verbosity").
            method: "integrated_gradients" (attributions add up to the target's change from a zero-embedding
                baseline) or "gradient_x_input" (one backward pass, cheaper, rougher).
            steps: Integrated Gradients steps, 1 to 256 (more is closer to exact; 32 by default).
        Returns:
            JSON with numbers to 4 significant digits
            target and method and steps
            explains: "response" or "conversation"
            value: the target for the input
            baseline_value: the target with the attributed words' embeddings zeroed
            completeness_gap: how far the attributions' sum is from value - baseline_value relative to it (Integrated
                Gradients: near 0)
            words and tokens: each with text and start and end (characters into the response or into message number
                `message` of the conversation) and attribution (positive = raises the target)
            segments: for the response the parts leave-one-out uses with the summed attribution and the leave-one-out
                effect
            spearman_with_leave_one_out: rank agreement of the two methods on those segments (-1 to 1)
        """
        wanted = parse_target(target, objective or None)
        found = await cancellable(explain_tokens, scorer, conversation, candidate, wanted, method, steps)
        return found.to_dict()

    async def probe(conversation: list[dict] | str, candidates: list[str], candidate: str = "A",
                    probes: str = "all") -> Probed:  # fmt: skip
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
        or existing markdown. The result (over MCP: JSON, numbers to 4 significant digits): candidate (the letter
        edited); score (its score before any edit); objectives (the ids of the 19 objectives, the order of every
        per-objective list); probes, one entry per probe asked for, with probe (its name) and skipped (why it does
        not apply to this text, e.g. there is no paragraph to bold; null when it applied). An applied probe also has
        delta (the score after the edit minus before; positive means the edit raises the score), score_before,
        score_after, tokens_added, rank_before and rank_after (1 = preferred among the candidates), scores_after
        (every candidate's score after the edit), reward_part and weight_part (19 numbers each: what the change of
        each objective's reward, and of the weight the model gives that objective, adds to delta; together they add
        up to delta exactly; the weights move only when the conversation is edited), preferred_probability (for an
        edit of the response, the probability that the model prefers the edited response to the original, 1 / (1 +
        exp(-delta)); null for an edit of the conversation, whose scores answer two different conversations),
        sentence (the change in words) and edited (the edited response, or the edited conversation).
        demo_checkpoint is true when the server runs a random-weight demo model whose scores mean nothing.

        Args:
            conversation: the user's prompt as text, or the messages, oldest first, as {"role", "content"} objects
                (roles system, user, assistant); the last is the user's turn.
            candidates: the responses to that last user turn; all are scored, so that rank changes are exact.
            candidate: which response to edit, by letter: "A" for the first candidate, "B" for the second...
            probes: "all", or probe names from the description separated by commas, e.g. "bold,emojis,repeat".
        """
        index, chosen = probe_choice(candidate, probes)
        found = await cancellable(probe_one, scorer, conversation, candidates, index, chosen)
        out = probe_probabilities(found.to_dict(), {p.name: p.side for p in chosen})
        return {**out, "objectives": [o.name for o in OBJECTIVES], "demo_checkpoint": scorer.is_demo}

    examples = {"conversation": CONVERSATION_EXAMPLE, "candidates": CANDIDATES_EXAMPLE,
                "candidate": CANDIDATES_EXAMPLE[0]}  # fmt: skip
    for fn, mcp_view in ((score, score_for_mcp), (probe, None), (attribute_tokens, None), (attribute, None)):
        wrapped = endpoint(fn, mcp_view)
        dependency = gr.api(wrapped, api_name=fn.__name__, concurrency_id="model")
        document(dependency, wrapped, examples if fn is not probe else {**examples, "candidate": "A"})
