"""Blind labelling, the status line, tie and 'all bad' labels: in the store, in the tab's handlers, and in every
reader of labels (the store's agreement, the CSV download, the preference pairs, the agreement report, the export)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from armorm_ui.agreement import ALL_BAD_CHOICE, TIE_CHOICE, agreement_report, ratings
from armorm_ui.errors import InputError
from armorm_ui.label_export import export_labels
from armorm_ui.label_store import agreement

from .test_label_store import ITEMS, result, store_with_file
from .test_ui_annotate import annotate_demo


def test_ties_and_all_bad_are_recorded_and_read_back(tmp_path):
    store, ana, key = store_with_file(tmp_path / "labels.sqlite")
    scores = result([0.1, 0.5, 0.2])
    store.record(ana, "f1", ITEMS[0], 0, TIE_CHOICE, None, "both fine", scores)
    store.record(ana, "f1", ITEMS[1], 1, ALL_BAD_CHOICE, None, "", scores)
    store.record(ana, "f1", ITEMS[2], 2, 1, [1, 0, 2], "", scores)
    with pytest.raises(InputError, match="takes no ranking"):
        store.record(ana, "f1", ITEMS[3], 3, TIE_CHOICE, [0, 1, 2], "", scores)
    with pytest.raises(InputError, match="Choose one of the 3 candidates"):
        store.record(ana, "f1", ITEMS[3], 3, -3, None, "", scores)
    assert store.frame(ana.project, "f1")["choice"].tolist() == [TIE_CHOICE, ALL_BAD_CHOICE, 1]
    assert store.label(ana, "f1", "q0") == {"choice": TIE_CHOICE, "ranking": None, "note": "both fine"}
    assert store.label(ana, "f1", "q2") == {"choice": 1, "ranking": [1, 0, 2], "note": ""}
    assert store.label(ana, "f1", "q3") is None
    assert store.next_position(ana, "f1") == 3  # a tie is a label: the annotator moves on

    summary = agreement(store.frame(ana.project, "f1"))
    assert summary["ana"]["labels"] == 1 and summary["ana"]["model_top_agreement"] == 1.0  # the tie left out
    assert summary["ana"]["ties"] == 1 and summary["ana"]["all_bad"] == 1
    ben = store.sign_in(key, "ben", "ben-passcode")
    store.record(ben, "f1", ITEMS[0], 0, TIE_CHOICE, None, "", scores)
    assert set(agreement(store.frame(ana.project, "f1"))) == {"ana"}  # ben chose no candidate: no figures

    table = ratings(store.frame(ana.project, "f1"))
    assert table.loc["q0", "ana"] == "tie" and table.loc["q1", "ana"] == "all bad" and table.loc["q0", "ben"] == "tie"
    report = agreement_report(table, resamples=50)
    assert {"tie", "all bad"} <= set(report["categories"]) and report["labels"]["ana"] == 3

    summary = export_labels(store, ana.project, "f1", tmp_path / "export")
    pairs = [json.loads(line) for line in open(summary["files"]["jsonl"], encoding="utf-8")]
    assert {p["id"] for p in pairs} == {"q2:B>A", "q2:B>C", "q2:A>C"} and len(pairs) == 3  # the ranking's pairs only
    assert sum(summary["no_pairs"].values()) == 2


def test_the_csv_download_and_the_pairs_skip_ties(tmp_path):
    from armorm_ui.ui.annotate_views import agreement_view, labels_export

    store, ana, _ = store_with_file(tmp_path / "labels.sqlite")
    scores = replace(result([0.1, 0.5, 0.2], np.random.default_rng(0).normal(size=(3, 19))),
                     candidate_tokens=np.array([4, 5, 6]))  # fmt: skip
    store.record(ana, "f1", ITEMS[0], 0, TIE_CHOICE, None, "", scores)
    store.record(ana, "f1", ITEMS[1], 1, ALL_BAD_CHOICE, None, "", scores)
    store.record(ana, "f1", ITEMS[2], 2, 1, None, "", scores)
    frame = store.frame(ana.project, "f1")
    csv_path, _ = labels_export(frame)
    labels = pd.read_csv(csv_path)
    assert labels["choice"].tolist() == ["Tie", "All bad", "B"]
    assert labels["agrees"].isna().tolist() == [True, True, False] and bool(labels["agrees"][2])  # a tie: neither
    from types import SimpleNamespace

    u = SimpleNamespace(**{k: k for k in ("agreement_text", "agreement_plot", "pairs_plot", "labels_csv",
                                          "agreement_json", "agreement_table", "preference_zip")})  # fmt: skip
    view = agreement_view(u, frame)
    assert "1 labels say tie and 1 all bad" in view["agreement_text"]
    assert "As 2 preference pairs" in view["agreement_text"]  # B against A and C: none from the tie


def elem(out: dict, elem_id: str):
    return next(v for k, v in out.items() if getattr(k, "elem_id", None) == elem_id)


def test_blind_labelling_with_a_status_line_and_ties(tmp_path, scorer):
    import gradio as gr

    fns = annotate_demo(scorer, tmp_path)
    key = asyncio.run(fns["made"]())[0]["value"]
    ana = (key, "ana", "ana-passcode")
    items = tmp_path / "items.csv"
    pd.DataFrame([{"item_id": f"a{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.",
                   "response_2": "No idea."} for i in range(3)]).to_csv(items, index=False)  # fmt: skip
    out = asyncio.run(fns["annotate_open"](str(items), *ana, True))
    model = elem(out, "annotate-model")
    assert model["value"] is None and model["visible"] is False  # blind: nothing of the model's is sent
    assert elem(out, "annotate-choice")["choices"] == ["A", "B", "Tie", "All bad"]
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    shown = asyncio.run(fns["annotate_open"](str(items), key, "ben", "ben-passcode", False))
    assert elem(shown, "annotate-model")["value"] is not None  # scores shown from the start, when asked

    out = asyncio.run(fns["annotate_save"](state, *ana, True, "A", "", ""))
    assert elem(out, "annotate-status").startswith("Saved: A for item a0")
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    out = asyncio.run(fns["annotate_save"](state, *ana, True, "Tie", "", "same"))
    assert elem(out, "annotate-status").startswith("Saved: Tie for item a1")
    with pytest.raises(gr.Error, match="takes no ranking"):
        asyncio.run(fns["annotate_save"](
            {**state, "position": 2}, *ana, True, "All bad", "B > A", ""))  # fmt: skip
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    back = asyncio.run(fns["previous"](state, *ana, True))  # the saved label, and now the model's view
    assert elem(back, "annotate-choice")["value"] == "Tie" and elem(back, "annotate-note") == "same"
    assert "your label: Tie" in elem(back, "annotate-status")
    assert elem(back, "annotate-model")["value"] is not None


def test_a_preference_file_opens_and_its_sides_are_gold_in_the_agreement_table(tmp_path, scorer):
    fns = annotate_demo(scorer, tmp_path)
    key = asyncio.run(fns["made"]())[0]["value"]
    ana = (key, "ana", "ana-passcode")
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": "Maybe."}
            for i in range(3)]  # fmt: skip
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = asyncio.run(fns["annotate_open"](str(pairs), *ana, True))
    assert "Item **1 of 3**" in elem(out, "annotate-status")
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    for pick in ("A", "B", "Tie"):
        out = asyncio.run(fns["annotate_save"](state, *ana, True, pick, "", ""))
        state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    view = asyncio.run(fns["annotate_agreement"](state, key))
    table = elem(view, "agreement-table")
    assert {"Krippendorff's alpha", "Cohen's kappa", "accuracy vs gold"} <= set(table["measure"])
    assert set(table.loc[table["measure"] == "accuracy vs gold", "raters"]) == {"ana", "model"}
    download = elem(view, "preference-data")
    assert download["interactive"] is True
    found = [json.loads(line) for line in open(download["value"], encoding="utf-8")]
    assert len(found) == 2 and {r["id"].split(":")[0] for r in found} == {"p0", "p1"}  # the tie gives none
    assert "Preference data: 2 pairs from 2 of 3 items" in elem(view, "agreement-text")


def test_the_item_list_and_progress_say_whose_labels_and_jump_anywhere(tmp_path, scorer):
    from armorm_ui.ui.annotate_views import item_list, progress_html

    marks = [("a0", "ana", 1), ("a2", "ana", TIE_CHOICE), ("a1", "ben", 0), ("a2", "ben", 0)]
    assert item_list(["a0", "a1", "a2", "a3"], marks, "ana") == [
        ("1. a0 — yours: B", 0),
        ("2. a1 — skipped · 1 label by others", 1),
        ("3. a2 — yours: Tie · 1 label by others · annotators disagree", 2),
        ("4. a3 — unlabelled", 3),
    ]
    bars = progress_html(["a0", "a1", "a2", "a3"], marks, "ana <b>")
    assert "You: 0 of 4" in bars and "Everyone (2 annotators): 3 of 4 items · annotators disagree on 1" in bars
    assert "1 of 4 items with 2 labels each" in progress_html(["a0", "a1", "a2", "a3"], marks, "ana", 2)

    fns = annotate_demo(scorer, tmp_path)
    key = asyncio.run(fns["made"]())[0]["value"]
    ana = (key, "ana", "ana-passcode")
    items = tmp_path / "items.csv"
    pd.DataFrame([{"item_id": f"a{i}", "prompt": f"Question {i}?", "response_1": f"Answer {i}.",
                   "response_2": "No idea."} for i in range(3)]).to_csv(items, index=False)  # fmt: skip
    out = asyncio.run(fns["annotate_open"](str(items), *ana, True))
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    out = asyncio.run(fns["jumped"](state, 2, *ana, True))  # straight to the last item
    assert "Item **3 of 3**" in elem(out, "annotate-status") and elem(out, "annotate-jump")["value"] == 2
    state = next(v for v in out.values() if isinstance(v, dict) and "file_id" in v)
    out = asyncio.run(fns["annotate_save"](state, *ana, True, "B", "", ""))
    assert "You: 1 of 3 (33%)" in elem(out, "annotate-progress")
    assert [c[0] for c in elem(out, "annotate-jump")["choices"]] == [
        "1. a0 — skipped", "2. a1 — skipped", "3. a2 — yours: B"]  # fmt: skip
    again = asyncio.run(fns["annotate_resume"](state["file_id"], *ana, True))  # resumed: the first unlabelled
    assert "Item **1 of 3**" in elem(again, "annotate-status")
