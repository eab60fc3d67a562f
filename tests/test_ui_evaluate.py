"""The Evaluate tab's file run: its per-pair table downloads as a CSV that stays inert in a spreadsheet."""

from __future__ import annotations

import csv
import json

from armorm_ui.tables import FORMULA_PREFIXES
from armorm_ui.ui.evaluate import evaluate_file
from armorm_ui.validation import Limits

FORMULAS = ['=WEBSERVICE("http://x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)"]


def test_the_per_pair_csv_escapes_formulas(tmp_path, fake_scorer):
    path = tmp_path / "pairs.jsonl"
    rows = [{"id": f, "subset": f, "prompt": f, "chosen": f"{f} yes", "rejected": f} for f in FORMULAS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = evaluate_file(fake_scorer, str(path), "", Limits(), 100)
    with open(out["table"], newline="", encoding="utf-8") as f:
        header, *table = list(csv.reader(f))
    assert len(table) == len(FORMULAS)
    ids = [row[header.index("pair_id")] for row in table]
    assert ids == ["'" + f for f in FORMULAS]  # shown as typed, after the quote that keeps it text
    for row in table:
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                float(cell)  # only a number may start like a formula (a negative margin)
