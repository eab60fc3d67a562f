"""The label database and agreement with the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from armorm_ui.batch import Item
from armorm_ui.errors import InputError
from armorm_ui.labels import LabelStore, agreement, parse_ranking
from armorm_ui.objectives import NAMES
from armorm_ui.results import ScoreResult

ITEMS = [Item(f"q{i}", [{"role": "user", "content": f"question {i}"}], ["a", "b", "c"], i + 2) for i in range(4)]


def result(scores, rewards=None) -> ScoreResult:
    scores = np.asarray(scores, dtype=float)
    rewards = np.zeros((len(scores), 19)) if rewards is None else rewards
    return ScoreResult(scores, rewards, np.ones(19), np.ones(19), np.eye(19))


def test_labels_persist_and_resume(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = LabelStore(path)
    store.add_file("f1", "items.csv", ITEMS)
    assert store.next_position("f1", "ana") == 0
    store.record("f1", ITEMS[0], 0, "ana", 1, None, "clear", result([0.1, 0.5, 0.2]))
    store.record("f1", ITEMS[1], 1, "ana", 0, [0, 2, 1], "", result([0.1, 0.5, 0.2]))
    again = LabelStore(path)  # a new process sees everything recorded
    assert again.next_position("f1", "ana") == 2
    assert again.next_position("f1", "ben") == 0  # annotators are told apart
    assert again.items("f1") == ITEMS
    frame = again.frame("f1")
    assert frame["note"].tolist() == ["clear", ""] and frame["choice"].tolist() == [1, 0]
    store.record("f1", ITEMS[0], 0, "ana", 2, None, "changed my mind", result([0.1, 0.5, 0.2]))
    assert len(again.frame("f1")) == 2  # replaced, not duplicated


def test_record_refusals(tmp_path):
    store = LabelStore(tmp_path / "l.sqlite")
    store.add_file("f", "x.csv", ITEMS)
    with pytest.raises(InputError, match="Enter your name"):
        store.record("f", ITEMS[0], 0, "  ", 0, None, "", result([1, 2, 3]))
    with pytest.raises(InputError, match="Choose one of the 3"):
        store.record("f", ITEMS[0], 0, "ana", 5, None, "", result([1, 2, 3]))
    with pytest.raises(InputError, match="not in the label database"):
        store.items("nope")


def test_parse_ranking():
    assert parse_ranking("B > A > C", 3) == [1, 0, 2]
    assert parse_ranking("c, a, b", 3) == [2, 0, 1]
    assert parse_ranking("  ", 3) is None
    for bad in ("A > B", "A > A > B", "A > B > D", "first"):
        with pytest.raises(InputError, match="must name each of A, B, C once"):
            parse_ranking(bad, 3)


def test_agreement_against_direct_computation(tmp_path):
    store = LabelStore(tmp_path / "l.sqlite")
    store.add_file("f", "x.csv", ITEMS)
    rng = np.random.default_rng(0)
    truth = []
    for i, (choice, ranking) in enumerate([(1, [1, 0, 2]), (0, None), (2, [2, 1, 0]), (1, None)]):
        rewards = rng.random((3, 19))
        scores = rng.random(3)
        store.record("f", ITEMS[i], i, "ana", choice, ranking, "", result(scores, rewards))
        truth.append((choice, ranking, scores, rewards))
    got = agreement(store.frame("f"))["ana"]
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
