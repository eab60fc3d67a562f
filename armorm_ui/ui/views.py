"""What the Compare tab shows, as plain functions of plain data (testable without a browser).

The form's fields become a conversation and candidates; one scoring becomes a JSON-able analysis (kept per visitor
in gr.State); `views()` turns an analysis into the charts and tables, all of them or only those a change touches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import explain, figures, tables
from ..errors import InputError
from ..objectives import OBJECTIVES
from ..results import ScoreResult
from ..scratch import scratch_folder

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
        "pairwise": lambda: figures.pairwise(result, a, b, labels),
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
