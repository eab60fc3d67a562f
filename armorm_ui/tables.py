"""Tables of a scored result (pandas), for the UI and for export (CSV, JSON)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import explain
from .objectives import HELPSTEER, NAMES, OBJECTIVES
from .results import ScoreResult

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""What makes a spreadsheet read a cell as a formula (OWASP CSV injection), fullwidth forms included."""


def ranking(result: ScoreResult, labels: list[str]) -> pd.DataFrame:
    """Candidate, score and length in tokens, best first (the verdict above it gives the margins)."""
    order = np.argsort(-result.scores, kind="stable")
    return pd.DataFrame(
        {
            "candidate": [labels[k] for k in order],
            "score": np.round(result.scores[order], 5),
            "tokens": [int(result.candidate_tokens[k]) for k in order] if len(result.candidate_tokens) else None,
        }
    )


def top_objectives(result: ScoreResult, labels: list[str], k: int = 3) -> pd.DataFrame:
    """The k objectives that move each candidate's score most (its contributions), after the k largest
    coefficients (what every candidate's rewards are multiplied by). One row per objective: narrow enough for a
    phone."""
    label_of = {o.name: o.label for o in OBJECTIVES}  # labels, as every chart shows them
    rows = [("coefficients", label_of[n], round(v, 4)) for n, v in explain.top_k(result.coefficients, k)]
    for label, items in zip(labels, explain.top_k_contributions(result, k)):
        rows += [(label, label_of[n], round(v, 4)) for n, v in items]
    return pd.DataFrame(rows, columns=["candidate", "objective", "value"])


def helpsteer(result: ScoreResult, labels: list[str]) -> pd.DataFrame:
    """The five HelpSteer objectives (rows) on their 0-4 scale for each candidate (columns); a value outside the
    scale is marked ↓ (below 0) or ↑ (above 4)."""
    values = explain.helpsteer(result.rewards)

    def cell(v: float) -> str:  # the mark agrees with the value shown: -0.004 is shown as 0.00, unmarked
        shown = round(float(v), 2) + 0.0  # + 0.0: no "-0.00"
        return f"{shown:.2f}" + (" ↓" if shown < 0 else " ↑" if shown > 4 else "")

    table = {"objective": [o.label for o in HELPSTEER]}
    table.update({label: [cell(v) for v in values[k]] for k, label in enumerate(labels)})
    return pd.DataFrame(table)


def weights_ranking(result: ScoreResult, weighted: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Each candidate's rank under the model's weights and under the user's, best first under the user's; "your
    rank" says how far it moved ("1 ▲ 2": first, two places up). The scores are in the chart beside it."""
    model_rank, your_rank = explain.ranks(result.scores), explain.ranks(weighted)
    return pd.DataFrame(
        {
            "candidate": labels,
            "model rank": model_rank,
            "your rank": [f"{b} {explain.rank_change(a, b)}" for a, b in zip(model_rank, your_rank)],
        }
    ).iloc[np.argsort(your_rank, kind="stable")]


def export_frame(result: ScoreResult, labels: list[str], responses: list[str]) -> pd.DataFrame:
    """One row per candidate: rank, score, response, and per objective its reward, native value, gating weight,
    coefficient and contribution."""
    nat = explain.native(result.rewards)
    contrib = explain.contributions(result)
    data: dict[str, object] = {
        "candidate": labels,
        "rank": explain.ranks(result.scores),
        "score": result.scores,
        "response": responses,
    }
    for o in OBJECTIVES:
        i, n = o.index, o.name
        data[f"{n}.reward"] = result.rewards[:, i]
        data[f"{n}.native"] = nat.values[:, i]
        data[f"{n}.gating"] = np.full(result.n, result.gating_output[i])
        data[f"{n}.coefficient"] = np.full(result.n, result.coefficients[i])
        data[f"{n}.contribution"] = contrib[:, i]
    return pd.DataFrame(data)


def escape_formula(value):
    """Spreadsheet-formula escaping: text starting with = + - @ tab or CR is prefixed with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def unescape_formula(value):
    """escape_formula undone, for a cell read back from a CSV this project wrote."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


def to_csv(frame: pd.DataFrame) -> str:
    """RFC 4180 CSV that stays inert in a spreadsheet: formula-like cells escaped, and every cell holding a line
    break (CR or LF) quoted, since a spreadsheet starts a new row at a bare CR and would read what follows as a
    cell of its own."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(escape_formula)
    return safe.to_csv(index=False, lineterminator="\r\n")


def to_json(result: ScoreResult, labels: list[str], messages: list[dict], responses: list[str]) -> str:
    return json.dumps(
        {
            "conversation": messages,
            "candidates": [{"label": lab, "response": r} for lab, r in zip(labels, responses)],
            "objectives": list(NAMES),
            **result.to_dict(),
            "ranks": explain.ranks(result.scores).tolist(),
            "contributions": explain.contributions(result).tolist(),
            "native": explain.native(result.rewards).values.tolist(),
        },
        ensure_ascii=False,
        indent=2,
    )


def shaded_html(segments: list[str], effects, what: str) -> str:
    """The response with each segment numbered (a CSS counter from data-n, so the text itself is unchanged) and
    shaded by its effect (green raises, red lowers), under a colour key; values on hover. Text is escaped: nothing
    a response contains is rendered as HTML."""
    import html

    finite = np.where(np.isfinite(effects), effects, 0.0)
    scale = float(np.abs(finite).max()) or 1.0
    spans = []
    for i, (text, value) in enumerate(zip(segments, effects)):
        if np.isfinite(value):
            alpha = 0.08 + 0.6 * abs(value) / scale
            colour = f"rgba(47,158,91,{alpha:.2f})" if value >= 0 else f"rgba(209,73,91,{alpha:.2f})"
            # the effect is full - without, so a positive one means leaving the segment out lowers `what`
            size = f"{abs(value):.5f}"
            if float(size) == 0:  # as shown: an effect below the last digit reads as no change
                tip = f"segment {i + 1}: leaving this out does not change the {what}"
            else:
                tip = f"segment {i + 1}: leaving this out {'lowers' if value > 0 else 'raises'} the {what} by {size}"
        else:
            colour, tip = "transparent", f"segment {i + 1}: cannot be left out (it is the whole response)"
        body = text.lstrip()  # the separator before a segment stays outside it, so its number starts the line
        spans.append(
            html.escape(text[: len(text) - len(body)])
            + f'<span class="seg" data-n="{i + 1}" style="background:{colour}" title="{html.escape(tip)}">'
            + f"{html.escape(body)}</span>"
        )
    key = (f'<div class="seg-key"><span class="seg-up">raises the {html.escape(what)}</span> '
           f'<span class="seg-down">lowers it</span> (the effect of each numbered segment: the {html.escape(what)} '
           "with it minus without it; numbers match the chart; hover for values)</div>")  # fmt: skip
    body = '<div class="shaded-response" style="white-space: pre-wrap; line-height: 1.8">' + "".join(spans) + "</div>"
    return key + body
