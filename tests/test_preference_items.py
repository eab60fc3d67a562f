"""Preference files opened for annotation: the answers as candidates in a seeded order, the file's sides kept."""

from __future__ import annotations

import csv
import json

import pytest

from armorm_ui.agreement import agreement_report
from armorm_ui.batch import BatchError, Item, parse_items
from armorm_ui.label_store import LabelStore
from armorm_ui.preference_items import file_labels, preference_item, read_annotation_items
from armorm_ui.preferences import Comparison
from armorm_ui.validation import Limits

PAIRS = [{"id": f"p{k}", "prompt": f"question {k}", "chosen": f"good {k}", "rejected": f"bad {k}"} for k in range(40)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chosen_text(item: Item) -> str:
    (k,) = item.metadata["chosen"]
    return item.candidates[k]


def test_pairs_open_as_items_in_a_seeded_order(tmp_path):
    items = read_annotation_items(write_jsonl(tmp_path / "pairs.jsonl", PAIRS), Limits())
    assert [i.item_id for i in items] == [r["id"] for r in PAIRS]
    for item, row in zip(items, PAIRS):
        assert item.messages == [{"role": "user", "content": row["prompt"]}]
        assert sorted(item.candidates) == sorted([row["chosen"], row["rejected"]])
        assert chosen_text(item) == row["chosen"] and item.metadata["subset"] == "all"
        assert item.candidates[item.metadata["rejected"][0]] == row["rejected"]
    first = [i.candidates.index(r["chosen"]) for i, r in zip(items, PAIRS)]
    assert 10 < sum(first) < 30  # the chosen answer is A about as often as B: its place gives nothing away
    again = read_annotation_items(write_jsonl(tmp_path / "again.jsonl", PAIRS[::-1]), Limits())
    assert {i.item_id: i.candidates for i in again} == {i.item_id: i.candidates for i in items}  # per item, not row
    other = read_annotation_items(tmp_path / "pairs.jsonl", Limits(), seed=1)
    assert [i.candidates for i in other] != [i.candidates for i in items]


def test_trl_layouts_and_csv(tmp_path):
    conversational = [{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                       "chosen": [{"role": "assistant", "content": "Hello."}],
                       "rejected": [{"role": "assistant", "content": "Go away."}]}]  # fmt: skip
    implicit = [{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
                 "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No."}]}]  # fmt: skip
    (item,) = read_annotation_items(write_jsonl(tmp_path / "trl.jsonl", conversational), Limits())
    assert item.item_id == "1" and item.messages == conversational[0]["prompt"] and chosen_text(item) == "Hello."
    (item,) = read_annotation_items(write_jsonl(tmp_path / "implicit.jsonl", implicit), Limits())
    assert item.messages == [{"role": "user", "content": "Hi"}] and chosen_text(item) == "Hello."
    with open(tmp_path / "pairs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["question", "good", "bad", "subset"])
        writer.writeheader()
        writer.writerow({"question": "Q?", "good": "yes", "bad": "no", "subset": "chat"})
    (item,) = read_annotation_items(
        tmp_path / "pairs.csv", Limits(), columns="prompt=question,chosen=good,rejected=bad"
    )
    assert chosen_text(item) == "yes" and item.metadata["subset"] == "chat"


def test_several_answers_a_side_keep_every_side():
    comparison = Comparison("r1", "Ties", [{"role": "user", "content": "Q"}], ("c1", "c2"), ("r1", "r2", "r3"), 2)
    item = preference_item(comparison, seed=5)
    assert sorted(item.candidates) == ["c1", "c2", "r1", "r2", "r3"]
    assert sorted(item.candidates[k] for k in item.metadata["chosen"]) == ["c1", "c2"]
    assert sorted(item.candidates[k] for k in item.metadata["rejected"]) == ["r1", "r2", "r3"]
    assert file_labels([item]) == {}  # two chosen answers: no single gold label


def test_batch_files_are_read_as_before(tmp_path):
    path = write_jsonl(tmp_path / "batch.jsonl", [{"prompt": "Q", "response_1": "a", "response_2": "b"}])
    assert read_annotation_items(path, Limits()) == parse_items(path, Limits())
    assert parse_items(path, Limits())[0].metadata is None


def test_bad_rows_are_listed(tmp_path):
    rows = [*PAIRS[:2], {"id": "x", "prompt": "Q", "chosen": "", "rejected": "b"}, {"prompt": "Q", "chosen": "a"}]
    with pytest.raises(BatchError, match="line 3: chosen is empty") as e:
        read_annotation_items(write_jsonl(tmp_path / "bad.jsonl", rows), Limits())
    assert len(e.value.problems) == 2
    many = [{"prompt": "Q", "chosen": ["a", "b", "c"], "rejected": ["d", "e"]}]
    with pytest.raises(BatchError, match="5 candidates; the limit is 4"):
        read_annotation_items(write_jsonl(tmp_path / "many.jsonl", many), Limits(max_candidates=4))


def test_the_sides_are_stored_with_the_items_and_give_gold_labels(tmp_path, labels_url):
    import numpy as np

    from armorm_ui.agreement import ratings
    from armorm_ui.results import ScoreResult

    items = read_annotation_items(write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:6]), Limits())
    store = LabelStore(labels_url)  # SQLite and PostgreSQL
    ana = store.sign_in(store.new_project(), "ana", "ana-passcode")
    store.add_file(ana.project, "f1", "pairs.jsonl", items)
    assert store.items(ana.project, "f1") == items and store.item(ana.project, "f1", 3) == items[3]
    gold = file_labels(store.items(ana.project, "f1"))
    assert gold == {i.item_id: i.metadata["chosen"][0] for i in items}
    for k, item in enumerate(items):  # ana agrees with the file on all but the last item
        pick = gold[item.item_id] if k < 5 else 1 - gold[item.item_id]
        scores = np.array([0.0, 1.0])
        store.record(ana, "f1", item, k, pick, None, "", ScoreResult(scores, np.zeros((2, 19)), np.ones(19),
                                                                    np.ones(19), np.eye(19)))  # fmt: skip
    report = agreement_report(ratings(store.frame(ana.project, "f1")), gold=gold, resamples=10)
    assert report["gold"]["ana"]["items"] == 6 and report["gold"]["ana"]["accuracy"]["value"] == pytest.approx(5 / 6)
    from dataclasses import asdict

    from armorm_ui.label_store import ITEMS

    before = json.dumps({k: v for k, v in asdict(items[0]).items() if k != "metadata"})  # stored before metadata
    with store.engine.begin() as db:
        db.execute(ITEMS.update().where(ITEMS.c.position == 0).values(data=before))
    assert store.item(ana.project, "f1", 0).metadata is None
