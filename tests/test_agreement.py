"""Agreement between annotators: each figure equals the reference package's on the same labels (krippendorff,
scikit-learn, statsmodels), missing labels included; undefined figures are None with a reason."""

from __future__ import annotations

import json
import math
import warnings

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from armorm_ui.agreement import (
    ALL_BAD,
    ALL_BAD_CHOICE,
    MODEL,
    TIE,
    TIE_CHOICE,
    agreement_report,
    agreement_table,
    category,
    cohen_kappa,
    fleiss_kappa,
    gold_agreement,
    krippendorff_alpha,
    ratings,
)

LABELS = pd.DataFrame(
    {
        "ana": [0, 1, TIE, None, 1, 0, ALL_BAD, 2],
        "ben": [0, 1, 1, 0, None, 0, ALL_BAD, 2],
        "cy": [0, 0, TIE, 0, 1, None, 1, 2],
        "dee": [None, None, None, 0, 1, 0, ALL_BAD, None],
    },
    index=[f"q{i}" for i in range(8)],
    dtype=object,
)
CODE = {0: 0, 1: 1, 2: 2, TIE: 3, ALL_BAD: 4}


def numeric(table: pd.DataFrame) -> np.ndarray:
    """raters x items, NaN where missing: the krippendorff package's layout."""
    return np.array([[np.nan if v is None else CODE[v] for v in table[c]] for c in table.columns], dtype=float)


def reference_alpha(table: pd.DataFrame) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 0 / 0 when one category is used: NaN, as ours is None
            value = krippendorff.alpha(reliability_data=numeric(table), level_of_measurement="nominal")
    except ValueError:  # "more than one value in the domain", "a unit with values from two coders"
        return None
    return None if math.isnan(value) else value


def reference_kappa(a: pd.Series, b: pd.Series) -> float | None:
    both = a.notna() & b.notna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score([CODE[v] for v in a[both]], [CODE[v] for v in b[both]]) if both.any() else math.nan
    return None if math.isnan(value) else value


def reference_fleiss(table: pd.DataFrame, items: list[str]) -> float | None:
    rows = numeric(table[table.index.isin(items)]).T  # items x raters
    kept = np.array([r[~np.isnan(r)] for r in rows])  # the same number of labels in each
    counts, _ = aggregate_raters(kept.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = sm_fleiss(counts)
    return None if math.isnan(value) else value


def test_every_figure_equals_the_reference_packages():
    report = agreement_report(LABELS)
    assert report["krippendorff_alpha"]["value"] == pytest.approx(reference_alpha(LABELS), abs=1e-12)
    assert report["krippendorff_alpha"]["items"] == 8 and report["krippendorff_alpha"]["labels"] == 25
    for pair in report["cohen_kappa"]:
        assert pair["value"] == pytest.approx(reference_kappa(LABELS[pair["a"]], LABELS[pair["b"]]), abs=1e-12)
    ana_dee = next(p for p in report["cohen_kappa"] if (p["a"], p["b"]) == ("ana", "dee"))
    assert ana_dee["items"] == 3 and ana_dee["agreement"] == 1.0
    fleiss = report["fleiss_kappa"]
    assert fleiss["raters_per_item"] == 3 and fleiss["items"] == ["q0", "q1", "q2", "q3", "q4", "q5", "q7"]
    assert fleiss["value"] == pytest.approx(reference_fleiss(LABELS, fleiss["items"]), abs=1e-12)
    assert report["categories"] == ["A", "B", "C", "tie", "all bad"]
    json.dumps(report, allow_nan=False)  # plain JSON, no NaN


def test_the_bootstrap_resamples_items_and_is_seeded():
    """Each resample is a set of items drawn with replacement: the interval is the percentile interval of the
    figure recomputed on such sets, the same for the same seed."""
    fig = krippendorff_alpha(LABELS, resamples=200, seed=3)
    assert fig == krippendorff_alpha(LABELS, resamples=200, seed=3)
    assert fig != krippendorff_alpha(LABELS, resamples=200, seed=4)
    draws = np.random.default_rng(3).integers(0, 8, (200, 8))  # 8 items drawn with replacement, 200 times
    values = [reference_alpha(LABELS.iloc[d]) for d in draws]
    defined = [v for v in values if v is not None]
    assert fig["undefined_resamples"] == 200 - len(defined)
    assert [fig["low"], fig["high"]] == pytest.approx(np.quantile(defined, [0.025, 0.975]).tolist(), abs=1e-12)
    assert fig["low"] <= fig["value"] <= fig["high"]


def test_the_model_is_one_more_rater_and_gold_labels_are_scored():
    table = LABELS.copy()
    table[MODEL] = [0, 1, 1, 0, 0, 0, 1, 2]
    gold = {"q0": 0, "q1": 1, "q2": TIE, "q6": ALL_BAD, "q7": 2, "elsewhere": 1}
    report = agreement_report(table, gold=gold)
    assert report["raters"] == ["ana", "ben", "cy", "dee", MODEL]
    assert report["krippendorff_alpha"] == agreement_report(LABELS)["krippendorff_alpha"]  # between people
    assert report["krippendorff_alpha_with_model"]["value"] == pytest.approx(reference_alpha(table), abs=1e-12)
    model_pairs = [p for p in report["cohen_kappa"] if p["b"] == MODEL]
    assert [p["a"] for p in model_pairs] == ["ana", "ben", "cy", "dee"]
    for p in model_pairs:
        assert p["value"] == pytest.approx(reference_kappa(table[p["a"]], table[MODEL]), abs=1e-12)
    gold_series = pd.Series(gold, dtype=object).reindex(table.index)
    for rater in report["raters"]:
        g = report["gold"][rater]
        both = table[rater].notna() & gold_series.notna()
        assert g["items"] == both.sum()
        right = [a == b for a, b in zip(table[rater][both], gold_series[both])]
        assert g["accuracy"]["value"] == pytest.approx(np.mean(right))
        expected = reference_kappa(table[rater], gold_series)
        assert g["kappa"]["value"] == (None if expected is None else pytest.approx(expected, abs=1e-12))
    shown = agreement_table(report)
    assert list(shown.columns) == ["measure", "raters", "items", "value", "low", "high", "note"]
    assert len(shown) == 2 + 1 + 10 + 2 * 5
    assert shown.loc[2, "note"] == "items with 3 labels each"


def test_undefined_figures_are_none_with_a_reason():
    one = LABELS[["ana"]]
    assert krippendorff_alpha(one)["value"] is None and "one rater" in krippendorff_alpha(one)["reason"]
    assert fleiss_kappa(one)["value"] is None and fleiss_kappa(one)["items"] == []
    same = pd.DataFrame({"a": [1, 1, 1], "b": [1, 1, None]}, dtype=object)
    for fig in (krippendorff_alpha(same), cohen_kappa(same["a"], same["b"]), fleiss_kappa(same)):
        assert fig["value"] is None and "same category" in fig["reason"]
    apart = pd.DataFrame({"a": [0, None], "b": [None, 1]}, dtype=object)
    assert cohen_kappa(apart["a"], apart["b"])["reason"] == "no item labelled by both"
    assert krippendorff_alpha(apart)["reason"] == "no item has labels from two raters"
    assert fleiss_kappa(apart)["reason"] == "no item has labels from two raters"
    assert gold_agreement(apart["a"], pd.Series({1: 0}, dtype=object))["accuracy"]["value"] is None
    report = agreement_report(apart, gold={})
    json.dumps(report, allow_nan=False)
    assert agreement_table(report)["note"].str.len().gt(0).all()  # each row says why it has no value
    empty = agreement_report(pd.DataFrame(dtype=object))
    assert empty["items"] == 0 and empty["krippendorff_alpha"]["value"] is None


def test_labels_as_categories():
    assert [category(v) for v in (2, 2.0, np.int64(1), "B", " tie ", "All bad", None, math.nan)] == [
        2, 2, 1, 1, TIE, ALL_BAD, None, None]  # fmt: skip
    assert category(TIE_CHOICE) == TIE and category(ALL_BAD_CHOICE) == ALL_BAD
    for bad in (True, -3, 1.5, "maybe", [1]):
        with pytest.raises(ValueError):
            category(bad)


def test_ratings_from_the_label_store(tmp_path):
    from armorm_ui.batch import Item
    from armorm_ui.label_store import LabelStore
    from armorm_ui.results import ScoreResult

    def result(scores):
        return ScoreResult(np.asarray(scores, float), np.zeros((len(scores), 19)), np.ones(19), np.ones(19),
                           np.eye(19))  # fmt: skip

    items = [Item(f"q{i}", [{"role": "user", "content": f"question {i}"}], ["a", "b", "c"], i) for i in range(3)]
    store = LabelStore(tmp_path / "labels.sqlite")
    key = store.new_project()
    ana, ben = store.sign_in(key, "ana", "ana-passcode"), store.sign_in(key, "ben", "ben-passcode")
    store.add_file(ana.project, "f1", "items.csv", items)
    scores = [[0.1, 0.5, 0.2], [0.9, 0.1, 0.0], [0.0, 0.1, 0.2]]
    for who, picks in ((ana, [1, 0, 2]), (ben, [1, 2])):
        for k, pick in enumerate(picks):
            store.record(who, "f1", items[k], k, pick, None, "", result(scores[k]))
    table = ratings(store.frame(ana.project, "f1"))
    assert table.to_dict("index") == {
        "q0": {"ana": 1, "ben": 1, MODEL: 1},
        "q1": {"ana": 0, "ben": 2, MODEL: 0},
        "q2": {"ana": 2, "ben": None, MODEL: 2},
    }
    assert table.attrs["model"] == MODEL and agreement_report(table, resamples=5)["model"] == MODEL
    store.add_file(ana.project, "f2", "more.csv", items)
    store.record(ana, "f2", items[0], 0, 0, None, "", result(scores[0]))
    assert sorted(ratings(store.frame(ana.project), model=False).index) == [
        "items.csv/q0", "items.csv/q1", "items.csv/q2", "more.csv/q0"]  # fmt: skip
    store.add_file(ana.project, "f3", "more.csv", items)  # another file of the same name: told apart by id
    store.record(ana, "f3", items[0], 0, 0, None, "", result(scores[0]))
    assert sorted(ratings(store.frame(ana.project), model=False).index)[-2:] == ["f2/q0", "f3/q0"]
    someone = store.sign_in(key, MODEL, "a-person-named-model")  # a person may take the name
    store.record(someone, "f1", items[0], 0, 2, None, "", result(scores[0]))
    table = ratings(store.frame(ana.project, "f1"))
    assert list(table.columns) == ["ana", "ben", MODEL, "model (ArmoRM)"]
    report = agreement_report(table, resamples=5)
    assert report["model"] == "model (ArmoRM)" and report["krippendorff_alpha"]["labels"] == 5
    assert agreement_table(report)["raters"].tolist()[:2] == ["ana, ben, model", "ana, ben, model, model (ArmoRM)"]


LABEL = st.sampled_from([0, 1, 2, TIE, ALL_BAD, None])


@st.composite
def tables(draw):
    raters = draw(st.integers(2, 4))
    items = draw(st.integers(1, 12))
    cells = draw(st.lists(st.lists(LABEL, min_size=raters, max_size=raters), min_size=items, max_size=items))
    return pd.DataFrame(cells, columns=[f"r{k}" for k in range(raters)], dtype=object)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_random_labels_agree_with_the_reference_packages(table):
    options = {"resamples": 20}
    alpha, expected = krippendorff_alpha(table, **options)["value"], reference_alpha(table)
    assert alpha == (None if expected is None else pytest.approx(expected, abs=1e-9))
    for a, b in ((0, 1), (1, 0)):  # symmetric
        kappa = cohen_kappa(table.iloc[:, a], table.iloc[:, b], **options)["value"]
        expected = reference_kappa(table.iloc[:, a], table.iloc[:, b])
        assert kappa == (None if expected is None else pytest.approx(expected, abs=1e-9))
    fleiss = fleiss_kappa(table, **options)
    if fleiss["items"]:
        expected = reference_fleiss(table.set_axis(map(str, table.index)), fleiss["items"])
        assert fleiss["value"] == (None if expected is None else pytest.approx(expected, abs=1e-9))
        assert all(table.loc[int(i)].notna().sum() == fleiss["raters_per_item"] for i in fleiss["items"])
    report = agreement_report(table, **options)
    json.dumps(report, allow_nan=False)
    for fig in [report["krippendorff_alpha"], report["fleiss_kappa"], *report["cohen_kappa"]]:
        assert (fig["value"] is None) == bool(fig["reason"])
        if fig["value"] is not None and fig["low"] is not None:
            assert -1 - 1e-9 <= fig["low"] <= fig["high"] <= 1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(tables(), st.permutations([0, 1, 2, TIE, ALL_BAD]))
def test_names_of_categories_do_not_matter(table, renamed):
    mapping = dict(zip([0, 1, 2, TIE, ALL_BAD], renamed))
    other = table.apply(lambda c: c.map(lambda v: None if v is None else mapping[v])).astype(object)
    other = other.where(table.notna(), None)
    first, second = agreement_report(table, resamples=0), agreement_report(other, resamples=0)
    for key in ("krippendorff_alpha", "fleiss_kappa"):
        assert first[key]["value"] == (None if second[key]["value"] is None else pytest.approx(second[key]["value"]))
