"""The label database and agreement with the model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from armorm_ui.batch import Item
from armorm_ui.errors import InputError
from armorm_ui.label_store import LabelStore, agreement, parse_ranking
from armorm_ui.objectives import NAMES
from armorm_ui.results import ScoreResult

ITEMS = [Item(f"q{i}", [{"role": "user", "content": f"question {i}"}], ["a", "b", "c"], i + 2) for i in range(4)]


def result(scores, rewards=None) -> ScoreResult:
    scores = np.asarray(scores, dtype=float)
    rewards = np.zeros((len(scores), 19)) if rewards is None else rewards
    return ScoreResult(scores, rewards, np.ones(19), np.ones(19), np.eye(19))


KEY, OTHER_KEY = "team-key-0123456789", "another-team-key-99"


def store_with_file(path, key=KEY, **quotas):
    store = LabelStore(path, **quotas)
    ana = store.sign_in(key, "ana", "ana-passcode")
    store.add_file(ana.project, "f1", "items.csv", ITEMS)
    return store, ana


def test_labels_persist_and_resume(labels_url):
    path = labels_url
    store, ana = store_with_file(path)
    assert store.next_position(ana, "f1") == 0
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "clear", result([0.1, 0.5, 0.2]))
    store.record(ana, "f1", ITEMS[1], 1, 0, [0, 2, 1], "", result([0.1, 0.5, 0.2]))
    again = LabelStore(path)  # a new process sees everything recorded
    ana2 = again.sign_in(KEY, "ana", "ana-passcode")
    assert again.next_position(ana2, "f1") == 2
    ben = again.sign_in(KEY, "ben", "ben-passcode")
    assert again.next_position(ben, "f1") == 0  # annotators are told apart
    assert [again.item(ana.project, "f1", k) for k in range(4)] == ITEMS
    frame = again.frame(ana.project, "f1")
    assert frame["note"].tolist() == ["clear", ""] and frame["choice"].tolist() == [1, 0]
    store.record(ana, "f1", ITEMS[0], 0, 2, None, "changed my mind", result([0.1, 0.5, 0.2]))
    assert len(again.frame(ana.project, "f1")) == 2  # replaced, not duplicated


def test_record_refusals(labels_url):
    store, ana = store_with_file(labels_url)
    with pytest.raises(InputError, match="Enter your name"):
        store.sign_in(KEY, "  ", "ana-passcode")
    with pytest.raises(InputError, match="Choose one of the 3"):
        store.record(ana, "f1", ITEMS[0], 0, 5, None, "", result([1, 2, 3]))
    with pytest.raises(InputError, match="not in this project"):
        store.count(ana.project, "nope")
    with pytest.raises(InputError, match="The note is 2,001 characters long; the limit is 2,000"):
        store.record(ana, "f1", ITEMS[0], 0, 0, None, "n" * 2001, result([1, 2, 3]))
    with pytest.raises(InputError, match="Your name is 65 characters long; the limit is 64"):
        store.sign_in(KEY, "a" * 65, "ana-passcode")
    with pytest.raises(InputError, match="Your name contains a NUL"):
        store.sign_in(KEY, "a\0b", "ana-passcode")


def test_a_second_project_cannot_list_open_or_read_the_first(labels_url):
    store, ana = store_with_file(labels_url)
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "private note", result([0.1, 0.5, 0.2]))
    eve = store.sign_in(OTHER_KEY, "ana", "eve-passcode")  # same name, another project: another person
    assert store.files(eve.project) == [] and store.files(ana.project) == [("f1", "items.csv")]
    with pytest.raises(InputError, match="not in this project"):
        store.count(eve.project, "f1")
    with pytest.raises(InputError, match="not in this project"):
        store.item(eve.project, "f1", 0)
    assert store.frame(eve.project).empty and store.frame(eve.project, "f1").empty
    assert store.labelled(eve, "f1") == 0
    with pytest.raises(InputError, match="project key"):
        store.sign_in("short", "ana", "ana-passcode")


def test_a_name_is_claimed_by_its_passcode(labels_url):
    store, ana = store_with_file(labels_url)
    with pytest.raises(InputError, match="name is taken in this project"):
        store.sign_in(KEY, "ana", "not-anas-passcode")
    with pytest.raises(InputError, match="passcode"):
        store.sign_in(KEY, "ana", "short")
    assert store.sign_in(KEY, " ana ", "ana-passcode") == ana


def test_quotas_and_expiry(labels_url, monkeypatch):
    store, ana = store_with_file(labels_url, max_files=2, max_bytes=4000, max_age_days=1)
    store.add_file(ana.project, "f1", "items.csv", ITEMS)  # the same file again: no new space taken
    store.add_file(ana.project, "f2", "more.csv", ITEMS)
    with pytest.raises(InputError, match="keeps 2 files, the limit"):
        store.add_file(ana.project, "f3", "third.csv", ITEMS)
    big = [Item(f"b{i}", [{"role": "user", "content": "x" * 500}], ["a", "b"], i) for i in range(8)]
    other = store.sign_in(OTHER_KEY, "eve", "eve-passcode")
    with pytest.raises(InputError, match="the limit is 0 MB per project"):
        store.add_file(other.project, "big", "big.csv", big)
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "", result([0.1, 0.5, 0.2]))
    later = time.time() + 2 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    store.add_file(other.project, "small", "small.csv", ITEMS[:1])  # any write removes what expired
    assert store.files(ana.project) == []
    with pytest.raises(InputError, match="expired"):
        store.item(ana.project, "f1", 0)
    assert len(store.frame(ana.project)) == 1  # the labels are kept
    store.add_file(ana.project, "f1", "items.csv", ITEMS)  # uploading the file again brings it back
    assert store.next_position(ana, "f1") == 1


def test_labelling_one_item_reads_one_item(labels_url):
    import sqlalchemy as sa

    many = [Item(f"q{i}", [{"role": "user", "content": f"question {i} " + "x" * 2000}], ["a", "b"], i) for i in
            range(300)]  # fmt: skip
    store = LabelStore(labels_url)
    ana = store.sign_in(KEY, "ana", "ana-passcode")
    store.add_file(ana.project, "f", "many.csv", many)
    read = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: read.append((args[2], args[3])))
    assert store.item(ana.project, "f", 123) == many[123]
    store.record(ana, "f", many[123], 123, 0, None, "", result([1.0, 0.0]))
    assert store.next_position(ana, "f") == 0
    item_reads = [(sql, params) for sql, params in read if "project_items.data" in sql]
    params = item_reads[0][1] if item_reads else ()
    values = params.values() if isinstance(params, dict) else params  # named (PostgreSQL) or positional (SQLite)
    assert len(item_reads) == 1 and 123 in values  # one row, for item(); no whole-file read


def test_parse_ranking():
    assert parse_ranking("B > A > C", 3) == [1, 0, 2]
    assert parse_ranking("c, a, b", 3) == [2, 0, 1]
    assert parse_ranking("  ", 3) is None
    for bad in ("A > B", "A > A > B", "A > B > D", "first"):
        with pytest.raises(InputError, match="must name each of A, B, C once"):
            parse_ranking(bad, 3)


def test_agreement_against_direct_computation(labels_url):
    store, ana = store_with_file(labels_url)
    rng = np.random.default_rng(0)
    truth = []
    for i, (choice, ranking) in enumerate([(1, [1, 0, 2]), (0, None), (2, [2, 1, 0]), (1, None)]):
        rewards = rng.random((3, 19))
        scores = rng.random(3)
        store.record(ana, "f1", ITEMS[i], i, choice, ranking, "", result(scores, rewards))
        truth.append((choice, ranking, scores, rewards))
    got = agreement(store.frame(ana.project, "f1"))["ana"]
    assert got["labels"] == 4
    assert got["model_top_agreement"] == pytest.approx(np.mean([np.argmax(s) == c for c, _, s, _ in truth]))
    for j, name in enumerate(NAMES):
        direct = np.mean([np.argmax(r[:, j]) == c for c, _, _, r in truth])
        assert got["objective_agreement"][name] == pytest.approx(direct, abs=1e-4)
    rhos = []
    for _c, ranking, scores, _r in truth:
        if ranking:
            human = np.argsort(ranking)  # position of each candidate in the human order
            model = np.argsort(np.argsort(-scores))
            rhos.append(1 - 6 * np.sum((human - model) ** 2) / (3 * (9 - 1)))  # Spearman, no ties
    assert got["full_rankings"] == 2 and got["spearman_mean"] == pytest.approx(np.mean(rhos))
    json.dumps(got)
