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
    """Rank, candidate, score, gap to the next one down, tokens, best first."""
    order = np.argsort(-result.scores, kind="stable")
    s = result.scores[order]
    gap = np.append(s[:-1] - s[1:], np.nan)
    return pd.DataFrame(
        {
            "rank": np.arange(1, result.n + 1),
            "candidate": [labels[k] for k in order],
            "score": np.round(s, 6),
            "margin to next": np.round(gap, 6),
            "tokens": [int(result.candidate_tokens[k]) for k in order] if len(result.candidate_tokens) else None,
        }
    )


def top_objectives(result: ScoreResult, labels: list[str], k: int = 3) -> pd.DataFrame:
    """Per candidate, the k objectives that move its score most; plus the card's top-k coefficients."""
    label_of = {o.name: o.label for o in OBJECTIVES}  # labels, as every chart shows them

    def cells(items):
        return {f"#{i + 1}": f"{label_of[n]}: {v:+.5f}" for i, (n, v) in enumerate(items)}

    rows = [{"candidate": "all (coefficients)", **cells(explain.top_k(result.coefficients, k))}]
    for label, items in zip(labels, explain.top_k_contributions(result, k)):
        rows.append({"candidate": label, **cells(items)})
    return pd.DataFrame(rows)


def helpsteer(result: ScoreResult, labels: list[str]) -> pd.DataFrame:
    values = explain.helpsteer(result.rewards)
    df = pd.DataFrame(np.round(values, 3), columns=[o.label for o in HELPSTEER])
    df.insert(0, "candidate", labels)
    outside = (values < 0) | (values > 4)
    df["note"] = [
        "outside 0-4: " + ", ".join(o.label for o, f in zip(HELPSTEER, row) if f) if row.any() else ""
        for row in outside
    ]
    return df


def weights_ranking(result: ScoreResult, weighted: np.ndarray, labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "candidate": labels,
            "model rank": explain.ranks(result.scores),
            "model score": np.round(result.scores, 6),
            "your rank": explain.ranks(weighted),
            "your score": np.round(weighted, 6),
        }
    ).sort_values("your rank")


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
            tip = f"segment {i + 1}: {what} {value:+.5f} when left out"
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
