"""Probe runs on files: what `python -m armorm_ui probe` and the Probe tab read and write.

The input is a candidates file (batch.py's layouts) or a preference-pairs file (preferences.py's: prompt, chosen,
rejected); the output is the per-answer table (one row per item, answer and probe: the texts before and after, both
scores, Δscore and its 19 per-objective parts) and the report (probing.probe_report: per probe the mean Δscore with
its interval, the share raised, the tokens added, and on pairs the flip and rescue rates).

Imports stay light (no pandas, numpy or scipy until a table or report is made), so the command line refuses a bad
file in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .batch import Item, parse_items, read_records
from .results import ScoreResult


@dataclass(frozen=True)
class ProbeInput:
    """What a probe run reads: the items, and on a preference-pairs file their subsets (candidate 0 is chosen)."""

    name: str
    kind: str
    """'candidates' (a batch file) or 'pairs' (prompt / chosen / rejected)."""
    items: list[Item]
    subsets: list[str] | None = None

    @property
    def pairs(self) -> bool:
        return self.kind == "pairs"


def read_probe_input(path: Path, limits, max_rows: int, columns: str | None = None) -> ProbeInput:
    """A preference-pairs file when it has a `chosen` or `rejected` column (after `columns`, which only pairs
    files take), else a candidates file; every row checked, as `evaluate` and `score` check them."""
    from .preferences import parse_columns, parse_pairs

    path = Path(path)
    mapping = parse_columns(columns)
    names, records = read_records(path, limits, max_rows)
    if mapping or any(mapping.get(f, f) in names for f in ("chosen", "rejected")):
        pairs = parse_pairs(path.name, names, records, limits, mapping)
        return ProbeInput(path.name, "pairs", [p.item() for p in pairs], [p.subset for p in pairs])
    return ProbeInput(path.name, "candidates", parse_items(path, limits, max_rows))


def probe_outcomes(source: ProbeInput, done: dict, probes: tuple) -> list[tuple[ScoreResult, list]]:
    """Each item's (base result, ProbeOutcomes) from its stored (result, probe record)."""
    from .probing import outcomes_from_dict

    out = []
    for item in source.items:
        base, record = done[item.item_id]
        out.append((base, outcomes_from_dict(record, base, item.messages, item.candidates, probes)))
    return out


def record_check(source: ProbeInput, probes: tuple):
    """load_partial's check of a stored probe record: it must turn back into outcomes of these candidates and
    probes, with text where text belongs (else ValueError: the item is probed again)."""
    by_id = {item.item_id: item for item in source.items}

    def check(item_id: str, base: ScoreResult, record) -> None:
        from .probing import outcomes_from_dict

        item = by_id[item_id]
        if base.n != len(item.candidates):
            raise ValueError("the stored result does not match the item's candidates")
        for o in outcomes_from_dict(record, base, item.messages, item.candidates, probes):
            texts = [o.answer, *(m["content"] for m in o.messages), *(m["role"] for m in o.messages)]
            if not all(isinstance(t, str) for t in texts):
                raise ValueError("the stored edit is not text")

    return check


def _changed_message(before: list[dict], after: list[dict]) -> tuple[str, str, str]:
    """(role, text before, text after) of the message a conversation-side probe changed, or added ('' before)."""
    for i, m in enumerate(after):
        if i >= len(before) or m != before[i]:
            return m["role"], before[i]["content"] if len(after) == len(before) else "", m["content"]
    return "", "", ""


def probe_table(source: ProbeInput, scored: list[tuple[ScoreResult, list]]):
    """The per-answer table: one row per (item, candidate, probe). The 19 objective columns (objectives.NAMES) are
    each objective's part of `delta` and add up to it; `reward_part` + `weight_part` is `delta` too. A skipped
    probe has its reason and no numbers after the edit. `original` and `edited` are the answer before and after an
    answer-side edit, and the message a conversation-side edit changed (`edited_part`: its role; `original` is ''
    for a message it added). On pairs, `other_score_*` is the other answer's score (it moves under a
    conversation-side edit), so flips and rescues can be counted from the table alone."""
    import pandas as pd

    from .explain import candidate_label
    from .objectives import NAMES, NUM_OBJECTIVES

    nan = float("nan")
    rows = []
    for i, (item, (base, outcomes)) in enumerate(zip(source.items, scored)):
        for o in outcomes:
            k, done = o.index, o.applied
            row = {"item_id": item.item_id}
            if source.pairs:
                row["subset"] = source.subsets[i]
            if o.probe.side == "answer":
                part, original, edited = "answer", item.candidates[k], o.answer if done else ""
            else:
                part, original, edited = _changed_message(item.messages, o.messages) if done else ("", "", "")
            row.update(candidate=("chosen", "rejected")[k] if source.pairs else candidate_label(k),
                       probe=o.probe.name, group=o.probe.group, side=o.probe.side, applied=done,
                       skipped_reason=o.skipped or "", edited_part=part, original=original, edited=edited,
                       score_before=float(base.scores[k]), score_after=float(o.scores_after[k]) if done else nan,
                       delta=o.delta if done else nan, tokens_added=o.tokens_added if done else None,
                       rank_before=o.rank_before if done else None,
                       rank_after=o.rank_after if done else None)  # fmt: skip
            if source.pairs:
                row["other_score_before"] = float(base.scores[1 - k])
                row["other_score_after"] = float(o.scores_after[1 - k]) if done else nan
            row["reward_part"] = float(o.reward_part.sum()) if done else nan
            row["weight_part"] = float(o.weight_part.sum()) if done else nan
            row.update(zip(NAMES, o.parts.tolist() if done else [nan] * NUM_OBJECTIVES))
            rows.append(row)
    frame = pd.DataFrame(rows)  # never empty: a file has rows, a run has probes
    return frame.astype({"applied": bool, "tokens_added": "Int64", "rank_before": "Int64", "rank_after": "Int64"})


def probe_results(source: ProbeInput, done: dict, probes: tuple):
    """(per-answer table, report) of a finished probe run: probing.probe_report with the input and probe list."""
    from .probing import probe_report

    scored = probe_outcomes(source, done, probes)
    found = probe_report([o for _, outcomes in scored for o in outcomes], probes, source.pairs)
    run = {"input": source.name, "input_kind": source.kind, "items": len(source.items),
           "answers": sum(len(item.candidates) for item in source.items),
           "probe_names": [p.name for p in probes]}  # fmt: skip
    return probe_table(source, scored), {**run, **found}


def _no_nan(value):
    """The report with NaN (an interval of fewer than two values) as null: strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def write_probe_report(found: dict, path: Path) -> None:
    from .evaluation import write_report

    write_report(_no_nan(found), path)


def probe_summary(found: dict) -> str:
    """One line: how much was probed, the probe that moves the score most, and on pairs the one that flips most."""
    entries = [e for e in found["probes"] if e["applied"]]
    unit = "pairs" if found["pairs"] else "items"
    text = f"probed {found['answers']} answers of {found['items']} {unit} with {len(found['probe_names'])} probes"
    if entries:
        top = max(entries, key=lambda e: abs(e["mean_delta"]))
        text += f"; largest mean Δscore: {top['label']} {top['mean_delta']:+.4g}"
        if top["low"] == top["low"]:  # not NaN
            text += f" (95% interval {top['low']:+.4g} to {top['high']:+.4g})"
    flips = [e for e in found["probes"] if found["pairs"] and e["flip"]["n"]]
    if flips:
        top = max(flips, key=lambda e: (e["flip"]["rate"], e["flip"]["n"]))
        text += f"; most flips: {top['label']} {top['flip']['k']} of {top['flip']['n']} pairs"
    return text
