"""Labels as preference data: TRL rows, written as JSONL, CSV and a data set folder, each read back by the Evaluate
tab's reader with the same pairs the labels say."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from armorm_ui.agreement import ALL_BAD_CHOICE, TIE, TIE_CHOICE
from armorm_ui.batch import Item
from armorm_ui.config import AppConfig
from armorm_ui.errors import InputError
from armorm_ui.label_export import decide, export_labels, pairs, preference_rows, write_csv, write_jsonl
from armorm_ui.label_store import LabelStore
from armorm_ui.results import ScoreResult
from armorm_ui.validation import Limits, check_request

USER = {"role": "user", "content": "Which is the capital of France?"}
ITEMS = [
    Item("q0", [USER], ["Paris.", "Lyon.", "- Marseille"], 2),
    Item("q1", [{"role": "user", "content": "=1+1"}], ["2", "11"], 3),
    Item("q2", [{"role": "user", "content": "Say hi"}], ["hi", "hello", "hey"], 4),
    Item("q3", [{"role": "user", "content": "Pick"}], ["x", "y"], 5),
    Item("q4", [{"role": "user", "content": "Again"}], ["x", "y"], 6),
    Item("q5", [{"role": "user", "content": "Nobody"}], ["x", "y"], 7),
]
EARLIER = Item("c0", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}, USER], ["Paris.", "Rome."], 8)  # fmt: skip


def result(n: int) -> ScoreResult:
    return ScoreResult(np.arange(n, dtype=float), np.zeros((n, 19)), np.ones(19), np.ones(19), np.eye(19))


def labels(rows: list[tuple]) -> pd.DataFrame:
    """(item_id, annotator, choice, ranking) -> LabelStore.frame's columns that the export reads."""
    return pd.DataFrame([{"item_id": i, "annotator": a, "choice": c, "ranking": json.dumps(r) if r else None}
                         for i, a, c, r in rows])  # fmt: skip


def evaluate_reader(path: str | None = None, dataset: str = ""):
    """The Evaluate tab's own reader of an uploaded file or a data set folder."""
    from armorm_ui.ui.evaluate import read_input

    found, _name, _digest = read_input(path, dataset, "train", "", "", AppConfig())
    return found


def as_pairs(found) -> set[tuple]:
    return {(c.comparison_id, json.dumps(c.messages), c.chosen, c.rejected, c.subset) for c in found.comparisons}


def expected_pairs(items: list[Item], wanted: dict[str, list[tuple[int, int]]], subset: dict[str, str]) -> set:
    by_id = {item.item_id: item for item in items}
    letters = "ABCDEFGH"
    return {(f"{i}:{letters[b]}>{letters[w]}", json.dumps(by_id[i].messages), (by_id[i].candidates[b],),
             (by_id[i].candidates[w],), subset[i]) for i, found in wanted.items() for b, w in found}  # fmt: skip


def test_the_label_used_for_an_item():
    assert decide([], gold=1) == (1, None, "gold")
    assert decide([(0, None), (0, None)], gold="tie") == (TIE, None, "gold")
    assert decide([]) == (None, None, "no label")
    assert decide([(0, None), (1, None)]) == (None, None, "no majority")
    assert decide([(0, None), (1, None), (2, None), (0, None)]) == (None, None, "no majority")  # 2 of 4 is not more
    assert decide([(1, [1, 0, 2]), (1, [1, 0, 2]), (0, None)]) == (1, [1, 0, 2], "majority")
    assert decide([(1, [1, 0, 2]), (1, [1, 2, 0])]) == (1, None, "unanimous")  # rankings differ: the choice only
    assert decide([(1, [1, 0, 2]), (1, None)]) == (1, None, "unanimous")
    assert decide([(TIE_CHOICE, None)]) == (TIE, None, "unanimous")
    assert pairs(1, None, 3) == [(1, 0), (1, 2)]
    assert pairs(1, [1, 2, 0], 3) == [(1, 2), (1, 0), (2, 0)]
    assert pairs(TIE, None, 3) == [] and pairs("all bad", None, 2) == []
    with pytest.raises(ValueError):
        pairs(3, None, 3)


def test_rows_and_summary():
    votes = labels([
        ("q0", "ana", 0, [0, 2, 1]), ("q0", "ben", 0, [0, 2, 1]),  # unanimous, one ranking: every ordered pair
        ("q1", "ana", 0, None), ("q1", "ben", 1, None), ("q1", "cy", 0, None),  # majority
        ("q2", "ana", 1, None), ("q2", "ben", 2, None),  # no majority
        ("q3", "ana", TIE_CHOICE, None),  # a tie: no pair
        ("q4", "ana", ALL_BAD_CHOICE, None), ("q4", "ben", 0, None),  # gold decides
        ("gone", "ana", 0, None),  # an item not in the file
    ])  # fmt: skip
    rows, summary = preference_rows(ITEMS, votes, gold={"q4": 1})
    assert [r["id"] for r in rows] == ["q0:A>C", "q0:A>B", "q0:C>B", "q1:A>B", "q4:B>A"]
    assert rows[0] == {"id": "q0:A>C", "prompt": USER["content"], "chosen": "Paris.", "rejected": "- Marseille",
                       "subset": "unanimous"}  # fmt: skip
    assert summary == {
        "items": 6, "pairs": 5, "items_with_pairs": 3, "from_rankings": 1,
        "label_from": {"unanimous": 2, "majority": 1, "gold": 1}, "no_pairs": {TIE: 1},
        "skipped": {"no majority": 1, "no label": 1}, "labels_of_unknown_items": 1, "format": "standard",
    }  # fmt: skip
    rows, summary = preference_rows([*ITEMS, EARLIER], labels([("c0", "ana", 1, None), ("q1", "ana", 0, None)]))
    assert summary["format"] == "conversational"  # one item with earlier turns: every row holds messages
    assert rows[0]["prompt"] == ITEMS[1].messages and rows[0]["chosen"] == [{"role": "assistant", "content": "2"}]
    assert rows[1]["prompt"] == EARLIER.messages and rows[1]["rejected"] == [{"role": "assistant", "content": "Paris."}]
    odd = Item("j", [{"role": "user", "content": '[{"role": "user", "content": "x"}]'}], ["a", "b"], 1)
    assert preference_rows([odd], labels([("j", "ana", 0, None)]))[1]["format"] == "conversational"


@pytest.mark.parametrize("earlier", [False, True], ids=["standard", "conversational"])
def test_every_file_reads_back_in_the_evaluate_tab_with_the_labels_pairs(tmp_path, earlier):
    import datasets

    store = LabelStore(tmp_path / "labels.sqlite")
    key = store.new_project()
    ana, ben = store.sign_in(key, "ana", "ana-passcode"), store.sign_in(key, "ben", "ben-passcode")
    items = [*ITEMS, EARLIER] if earlier else ITEMS
    store.add_file(ana.project, "f1", "items.csv", items)
    for who, votes in ((ana, {"q0": (0, [0, 2, 1]), "q1": (0, None), "q3": (1, None), "c0": (1, None)}),
                       (ben, {"q0": (0, [0, 2, 1]), "q1": (0, None), "q2": (2, None)})):  # fmt: skip
        for position, item in enumerate(items):
            if item.item_id in votes:
                choice, ranking = votes[item.item_id]
                store.record(who, "f1", item, position, choice, ranking, "", result(len(item.candidates)))
    out = export_labels(store, ana.project, "f1", tmp_path / "export")
    wanted = {"q0": [(0, 2), (0, 1), (2, 1)], "q1": [(0, 1)], "q3": [(1, 0)], "q2": [(2, 0), (2, 1)]}
    subset = {"q0": "unanimous", "q1": "unanimous", "q3": "unanimous", "q2": "unanimous", "c0": "unanimous"}
    if earlier:
        wanted["c0"] = [(1, 0)]
    expected = expected_pairs(items, wanted, subset)
    assert out["pairs"] == len(expected) and out["format"] == ("conversational" if earlier else "standard")
    for kind in ("jsonl", "csv"):
        found = evaluate_reader(out["files"][kind])
        assert as_pairs(found) == expected and found.layout == "pairs" and found.notes == []
    assert as_pairs(evaluate_reader(dataset=out["files"]["dataset"])) == expected
    rows = [json.loads(line) for line in open(out["files"]["jsonl"], encoding="utf-8")]
    assert datasets.load_from_disk(out["files"]["dataset"]).to_list() == rows
    assert out["files"]["dataset_zip"].endswith(".zip")
    # the CSV is the app's: a text a spreadsheet would run as a formula never starts a cell
    csv_text = open(out["files"]["csv"], encoding="utf-8").read()
    assert ",=1+1," not in csv_text and ",- Marseille" not in csv_text


def test_nothing_to_export_is_said(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    ana = store.sign_in(store.new_project(), "ana", "ana-passcode")
    store.add_file(ana.project, "f1", "items.csv", ITEMS)
    store.record(ana, "f1", ITEMS[0], 0, 0, None, "", result(3))
    with pytest.raises(
        InputError,
        match="No preference pairs to export: of 6 items, 1 are labelled a tie or all bad, 5 have no label and 0 no ",
    ):
        export_labels(store, ana.project, "f1", tmp_path / "out", gold={"q0": "all bad"})
    with pytest.raises(InputError, match="not in this project"):
        export_labels(store, ana.project, "nope", tmp_path / "out")


def scorable(item: Item) -> bool:
    """Texts the app would take (the reader refuses the others as any file's)."""
    try:
        check_request(item.messages, item.candidates, Limits())
    except InputError:
        return False
    return True


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Co", "Cn")), min_size=1, max_size=12)
SPECIAL = st.sampled_from(
    [
        "=SUM(A1)",
        "+1",
        "-",
        "@x",
        "\tx",
        "a\nb",
        "a\r\nb",
        '"q"',
        '["a"]',
        "[]",
        "x,y",
        " ",
        "a\u2028b",
        "a\x85b",
        "\ufeffx",
        "\u200b",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.one_of(TEXT, SPECIAL), st.lists(st.one_of(TEXT, SPECIAL), min_size=2, max_size=3)),
                min_size=1, max_size=4))  # fmt: skip
@example([("a\u2028b", ["=1", "x\x85y", '["a"]']), ("-", ["\ufeffx", "a\r\nb"])])
def test_any_texts_read_back_from_jsonl_and_csv(tmp_path_factory, drawn):
    folder = tmp_path_factory.mktemp("export")
    items = [Item(f"i{k}", [{"role": "user", "content": p}], c, k) for k, (p, c) in enumerate(drawn)]
    items = [i for i in items if scorable(i)]
    if not items:
        return
    rows, _ = preference_rows(items, labels([(i.item_id, "ana", 0, None) for i in items]))
    wanted = {i.item_id: [(0, k) for k in range(1, len(i.candidates))] for i in items}
    expected = expected_pairs(items, wanted, dict.fromkeys(wanted, "unanimous"))
    write_jsonl(rows, folder / "p.jsonl")
    write_csv(rows, folder / "p.csv")
    assert as_pairs(evaluate_reader(str(folder / "p.jsonl"))) == expected
    assert as_pairs(evaluate_reader(str(folder / "p.csv"))) == expected
