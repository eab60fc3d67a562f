"""What the Compare tab shows, as plain functions of plain data (testable without a browser).

The form's fields become a conversation and candidates; one scoring becomes a JSON-able analysis (kept per visitor
in gr.State); `views()` turns an analysis into the charts and tables, all of them or only those a change touches.
"""

from __future__ import annotations

import difflib
import html
import json
import re
import time
from pathlib import Path

import numpy as np

from .. import explain, figures, tables
from ..errors import InputError
from ..objectives import OBJECTIVES
from ..probes import by_names
from ..probing import AnswerProbes, ProbeOutcome
from ..results import ScoreResult
from ..scratch import scratch_folder
from .handlers import as_text

ASSETS = Path(__file__).resolve().parents[2] / "assets"
TURN_ROLES = ("user", "assistant")


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def load_examples() -> list[dict]:
    return json.loads(asset("examples.json"))


def conversation_from_form(system: str, turns, prompt: str) -> list[dict]:
    """System message (optional), earlier turns (rows of role, content), then the prompt as the last user turn."""
    for name, value in (("The system message", system), ("The prompt", prompt)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{name} must be text, got {type(value).__name__}.")
    if isinstance(turns, dict):  # the table's own form: {"headers": [...], "data": [[role, content], ...]}
        turns = turns.get("data")
    if turns is not None and not (isinstance(turns, list) and all(isinstance(r, (list, tuple)) for r in turns)):
        raise InputError("Earlier turns must be rows of (role, content).")
    messages = []
    if system and system.strip():
        messages.append({"role": "system", "content": system})
    for i, row in enumerate(turns or []):
        role, content = (list(row) + ["", ""])[:2]
        role, content = str(role or "").strip().lower(), str(content or "")
        if not content.strip() and not role:
            continue
        if role not in TURN_ROLES:
            raise InputError(f"Earlier turn {i + 1} has role {role!r}: write 'user' or 'assistant'.")
        if not content.strip():
            raise InputError(f"Earlier turn {i + 1} ({role}) is empty: write its text or delete the row.")
        messages.append({"role": role, "content": content})
    if not prompt or not prompt.strip():
        raise InputError("Write a prompt: the candidates are answers to it.")
    messages.append({"role": "user", "content": prompt})
    return messages


def candidates_from_form(count: int, boxes: list[str]) -> list[str]:
    """The filled candidate boxes among the first `count`: empty ones at the end are ignored; at least two to
    compare, and no empty box between filled ones (the letters would no longer match the boxes)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(boxes):
        raise InputError(f"The number of candidate boxes must be a whole number from 1 to {len(boxes)}.")
    texts = list(boxes[:count])
    labels = explain.candidate_labels(len(texts))
    for label, text in zip(labels, texts):
        if text is not None and not isinstance(text, str):
            raise InputError(f"Candidate {label} must be text, got {type(text).__name__}.")
    while texts and not (texts[-1] or "").strip():
        texts.pop()
    for label, text in zip(labels, texts):
        if not text or not text.strip():
            raise InputError(f"Candidate {label} is empty: write a response or remove the box.")
    if len(texts) < 2:
        raise InputError("Fill in at least two candidates to compare (one is filled).")
    return texts


def analyse(scorer, messages: list[dict], responses: list[str], should_stop=None) -> dict:
    """Score and package what every view needs, as plain JSON-able data (kept in gr.State)."""
    result = scorer.score(messages, responses, should_stop=should_stop)
    return {
        "result": result.to_dict(),
        "labels": explain.candidate_labels(result.n),
        "responses": responses,
        "messages": messages,
    }


def what_if_weights(weights) -> np.ndarray:
    """The 19 what-if multipliers as numbers (a slider left empty counts as 1, the model's own weight)."""
    if weights is None or len(weights) == 0:
        return np.ones(len(OBJECTIVES))
    try:
        values = np.array([1.0 if w is None else float(w) for w in weights], dtype=float)
    except (TypeError, ValueError) as e:
        raise InputError("What-if weights must be numbers.") from e
    if values.shape != (len(OBJECTIVES),) or not np.isfinite(values).all():
        raise InputError(f"What-if weights must be {len(OBJECTIVES)} finite numbers.")
    return values


def views(state: dict, weights=None, a: int = 0, b: int = 1, only: tuple[str, ...] | None = None) -> dict:
    """The charts and tables of one analysis, keyed by view name: every view, or `only` those named (a what-if
    or pair change redraws three views, not fourteen)."""
    result = ScoreResult.from_dict(state["result"])
    labels = state["labels"]
    weighted = explain.what_if(result, what_if_weights(weights))
    b = b if result.n > 1 else a
    build = {
        "summary": lambda: explain.verdict_text(explain.verdict(result), labels),
        "ranking": lambda: tables.ranking(result, labels),
        "scores": lambda: figures.scores(result, labels),
        "heatmap": lambda: figures.rewards_heatmap(result, labels),
        "bars": lambda: figures.rewards_bars(result, labels),
        "gating": lambda: figures.gating(result),
        "contributions": lambda: figures.contributions(result, labels),
        "helpsteer": lambda: figures.helpsteer(result, labels),
        "helpsteer_table": lambda: tables.helpsteer(result, labels),
        "pairwise": lambda: pairwise_figure(result, labels, a, b),
        "top": lambda: tables.top_objectives(result, labels),
        "transform": lambda: figures.transform(result),
        "what_if": lambda: figures.what_if(result, weighted, labels),
        "what_if_table": lambda: tables.weights_ranking(result, weighted, labels),
    }
    return {name: make() for name, make in build.items() if only is None or name in only}


def pair(state: dict, a_label, b_label) -> tuple[int, int]:
    """The two candidates of the "why A over B" view: by default the winner and the runner-up; never one
    candidate with itself (B then becomes the best-scored other one)."""
    labels = state["labels"]
    order = [int(k) for k in np.argsort(-np.asarray(state["result"]["scores"]), kind="stable")]
    a = labels.index(a_label) if a_label in labels else order[0]
    b = labels.index(b_label) if b_label in labels else None
    if b is None or b == a:
        b = next((k for k in order if k != a), a)
    return a, b


def pair_heading(labels: list[str], a: int, b: int) -> str:
    return f"### Why {labels[a]} over {labels[b]}?"


def pair_probability(scores, labels: list[str], a: int, b: int) -> str:
    """The probability the model prefers candidate a to b, sigmoid(s_a - s_b), with its words, as plain text:
    "P(C preferred to B) = 0.27: a clear preference for B" (nothing is favoured when it is close to a tie)."""
    p = explain.preference_probability(float(scores[a]) - float(scores[b]))
    words = explain.probability_words(p)
    text = f"P({labels[a]} preferred to {labels[b]}) = {explain.probability_text(p)}: {words}"
    return text if words == "close to a tie" else f"{text} for {labels[a] if p >= 0.5 else labels[b]}"


def pairwise_figure(result: ScoreResult, labels: list[str], a: int, b: int):
    """The "why A over B" chart (figures.pairwise) with the pair's preference probability under its title."""
    fig = figures.pairwise(result, a, b, labels)
    line = figures.literal(pair_probability(result.scores, labels, a, b))
    return fig.update_layout(title_text=f"{fig.layout.title.text}<br><sup>{line}</sup>")


def export_files(state: dict) -> tuple[str, str]:
    """Write the results table as CSV and JSON into a private temp folder; return the two paths."""
    result = ScoreResult.from_dict(state["result"])
    frame = tables.export_frame(result, state["labels"], state["responses"])
    folder = scratch_folder("armorm-export-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path, json_path = folder / f"armorm-scores-{stamp}.csv", folder / f"armorm-scores-{stamp}.json"
    csv_path.write_text(tables.to_csv(frame), encoding="utf-8")
    json_path.write_text(tables.to_json(result, state["labels"], state["messages"], state["responses"]), "utf-8")
    return str(csv_path), str(json_path)


# ----------------------------------------------------------------------------------------- token attribution


def _direction(value: float, what: str) -> str:
    if value > 0:
        return f"raises the {what} by {value:.4g}"
    if value < 0:
        return f"lowers the {what} by {-value:.4g}"
    return f"does not change the {what}"


def _shade(text: str, words: list[dict], what: str, scale: float) -> str:
    """`text` with each word shaded by its attribution (green raises, red lowers); numbers on hover. Escaped."""
    out, pos = [], 0
    for w in words:
        v = w["attribution"]
        alpha = 0.06 + 0.64 * min(abs(v) / scale, 1.0)
        colour = f"rgba(47,158,91,{alpha:.2f})" if v >= 0 else f"rgba(209,73,91,{alpha:.2f})"
        tip = f"{w['text']}: {_direction(v, what)}"
        if len(w.get("tokens", ())) > 1:  # the per-token numbers behind the word's
            tip += "\ntokens: " + ", ".join(f"{t!r} {a:+.3g}" for t, a in w["tokens"])
        out.append(html.escape(text[pos : w["start"]]))
        out.append(f'<span class="tok" style="background:{colour}" title="{html.escape(tip)}" '
                   f'data-attribution="{v:.6g}">{html.escape(text[w["start"] : w["end"]])}</span>')  # fmt: skip
        pos = w["end"]
    out.append(html.escape(text[pos:]))
    return "".join(out)


def token_html(found: dict, messages: list[dict], response: str) -> str:
    """The words of the response (or of the conversation, for a coefficient) shaded by their attribution."""
    words = found["words"]
    scale = max((abs(w["attribution"]) for w in words), default=0.0) or 1.0
    what = found["target"]
    key = (f'<div class="seg-key"><span class="seg-up">raises the {html.escape(what)}</span> '
           '<span class="seg-down">lowers it</span> (each word\'s attribution; hover for values)</div>')  # fmt: skip
    style = 'style="white-space: pre-wrap; line-height: 1.8" dir="auto"'
    if found["explains"] == "response":
        return key + f'<div class="shaded-response" {style}>{_shade(response, words, what, scale)}</div>'
    blocks = []
    for i, m in enumerate(messages):
        mine = [w for w in words if w.get("message") == i]
        shaded = _shade(m["content"], mine, what, scale)
        blocks.append(f'<div class="tok-message"><b>{html.escape(m["role"])}</b>'
                      f'<div class="shaded-response" {style}>{shaded}</div></div>')  # fmt: skip
    return key + "".join(blocks)


def token_summary(found: dict, letter: str) -> str:
    """What was computed, whether it adds up, the words that move the target most, and the agreement with
    leave-one-out, in words."""
    from ..token_attribution import METHODS

    what = found["target"]
    method = METHODS[found["method"]]
    total = sum(w["attribution"] for w in found["words"])
    change = found["value"] - found["baseline_value"]
    where = "response" if found["explains"] == "response" else "conversation"
    if found["method"] == "integrated_gradients":
        lines = [f"**{method}, {found['steps']} steps**, on the {what} of {letter}: the words' attributions add up "
                 f"to {total:+.4g}; from the baseline (every word of the {where} zeroed) to the input the {what} "
                 f"moves by {change:+.4g}: a completeness gap of {found['completeness_gap']:.1%}."]  # fmt: skip
    else:
        lines = [f"**{method}** on the {what} of {letter}: a first-order estimate, one backward pass; its sum "
                 f"({total:+.4g}) need not equal the change from the baseline ({change:+.4g})."]  # fmt: skip
    ranked = sorted(found["words"], key=lambda w: w["attribution"])
    up = [w for w in reversed(ranked) if w["attribution"] > 0][:5]
    down = [w for w in ranked if w["attribution"] < 0][:5]

    def listed(ws):
        return ", ".join(f"**{as_text(w['text'])}** ({w['attribution']:+.3g})" for w in ws) or "none"

    lines.append(f"Raise it most: {listed(up)}. Lower it most: {listed(down)}.")
    rho = found.get("spearman_with_leave_one_out")
    segs = found.get("segments") or []
    if found["explains"] == "conversation":
        lines.append("A coefficient depends on the conversation only (the gate reads the end of the last user "
                     "turn), so the response's words have no part in it.")  # fmt: skip
    elif rho is None:
        lines.append("No comparison with leave-one-out: it needs at least three segments that can be left out.")
    else:
        lines.append(f"Agreement with leave-one-out on the same {len(segs)} segments: Spearman ρ = {rho:+.2f} "
                     "(+1: the two methods order the segments alike; 0: unrelated; −1: opposite).")  # fmt: skip
    return "\n\n".join(lines)


# ------------------------------------------------------------------------------------------------------- probes


def probe_record(found: AnswerProbes, messages: list[dict], answer: str) -> dict:
    """A probe run as plain data for gr.State: AnswerProbes.to_dict() (the edited texts included), with the
    conversation and the answer it edited, for the edit viewer."""
    return {**found.to_dict(), "messages": messages, "answer": answer}


def _applied(record: dict) -> list[dict]:
    """The applied probes of a record, largest Δscore first (the chart's order)."""
    return sorted((p for p in record["probes"] if p.get("skipped") is None), key=lambda p: -p["delta"])


def edit_choices(record: dict | None) -> list[tuple[str, str]]:
    """(label, name) of each applied probe, in the chart's order: the edit viewer's choices."""
    if not record:
        return []
    return [(by_names([p["probe"]])[0].label, p["probe"]) for p in _applied(record)]


def probe_summary(outcomes: list[ProbeOutcome], label: str) -> str:
    """The probe run in words, as escaped HTML: a headline, one sentence per applied probe (in the chart's order),
    then the skipped probes with their reasons."""
    done = sorted((o for o in outcomes if o.applied), key=lambda o: -o.delta)
    skipped = [o for o in outcomes if not o.applied]
    up, down = sum(o.delta > 0 for o in done), sum(o.delta < 0 for o in done)
    moved = sum(o.rank_before != o.rank_after for o in done if len(o.scores_before) > 1)
    head = (f"<p><b>{len(done)} of {len(outcomes)} edits apply to candidate {html.escape(label)}</b>: {up} raise "
            f"its score, {down} lower it; {moved} change its rank.</p>")  # fmt: skip

    def said(o: ProbeOutcome) -> str:
        text, name = o.sentence(), o.probe.label
        if text.startswith(name):
            return f"<li><b>{html.escape(name)}</b>{html.escape(text[len(name) :])}</li>"
        return f"<li>{html.escape(text)}</li>"

    out = head + '<ul class="probe-sentences">' + "".join(said(o) for o in done) + "</ul>"
    if skipped:
        out += (f"<p><b>Not applied ({len(skipped)})</b></p><ul class=\"probe-skipped\">"
                + "".join(f"<li><b>{html.escape(o.probe.label)}</b>: {html.escape(o.skipped)}.</li>" for o in skipped)
                + "</ul>")  # fmt: skip
    return f'<div class="probe-words">{out}</div>'


WORDS = r"\w+|\s+|[^\w\s]+"
"""How the edit viewer cuts text: words, runs of spaces, runs of punctuation (so '.' -> '!' is one mark)."""


def word_diff(before: str, after: str) -> tuple[str, str]:
    """(before, after) as escaped HTML, word by word (difflib): what the edit removed struck through (<del>) in the
    first, what it added marked (<ins>) in the second. User text never becomes markup."""
    a, b = re.findall(WORDS, before), re.findall(WORDS, after)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = html.escape("".join(a[i1:i2])), html.escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
            continue
        if old:
            left.append(f"<del>{old}</del>")
        if new:
            right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def changed_messages(before: list[dict], after: list[dict]) -> list[tuple[str, str, str]]:
    """(role, old text, new text) of each message an edit changed, added ('' before) or removed ('' after)."""
    a = [(m["role"], m["content"]) for m in before]
    b = [(m["role"], m["content"]) for m in after]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        olds, news = a[i1:i2], b[j1:j2]
        for k in range(max(len(olds), len(news))):
            role = (news[k] if k < len(news) else olds[k])[0]
            out.append((role, olds[k][1] if k < len(olds) else "", news[k][1] if k < len(news) else ""))
    return out


def edit_html(record: dict | None, name: str | None) -> str:
    """The original and the edited text side by side (stacked on a phone), the change marked: the answer for an
    answer-side probe, each changed message of the conversation for a conversation-side one. Escaped."""
    entry = next((p for p in _applied(record) if p["probe"] == name), None) if record and name else None
    if entry is None:
        return ""
    probe = by_names([name])[0]
    if probe.side == "answer":
        pairs = [("The answer", record["answer"], entry["edited"])]
    else:
        pairs = [(f"{role.capitalize()} message{'' if old else ' (added)'}", old, new)
                 for role, old, new in changed_messages(record["messages"], entry["edited"])]  # fmt: skip
    key = (f'<div class="seg-key"><b>{html.escape(probe.label)}</b>: {html.escape(probe.changes)} Reported by '
           f'{html.escape(probe.source)}. <ins>added</ins> <del>removed</del></div>')  # fmt: skip
    blocks = []
    for title, old, new in pairs:
        left, right = word_diff(old, new)
        blocks.append(
            f'<div class="probe-title">{html.escape(title)}</div><div class="probe-panes">'
            f'<div class="probe-pane"><div class="probe-pane-title">Original</div>'
            f'<div class="probe-text probe-before" dir="auto">{left or "<i>(none)</i>"}</div></div>'
            f'<div class="probe-pane"><div class="probe-pane-title">Edited</div>'
            f'<div class="probe-text probe-after" dir="auto">{right or "<i>(none)</i>"}</div></div></div>'
        )  # fmt: skip
    return key + "".join(blocks)
