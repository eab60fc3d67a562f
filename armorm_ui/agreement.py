"""Agreement between annotators (and with the model, and with gold labels), for the Annotate tab.

A label is nominal: the chosen candidate's index, or TIE, or ALL_BAD (categories of their own). Labels come as a
table, one row per item and one column per rater, a missing label as None or NaN (`ratings` builds it from
LabelStore.frame, with the model's top-scored candidate per item). Measures:
- Krippendorff's alpha (nominal) over every rater, items with one label left out as unpairable (Krippendorff 2011,
  "Computing Krippendorff's Alpha-Reliability", https://repository.upenn.edu/asc_papers/43/): alpha = 1 - Do / De
  from the coincidence matrix, for nominal data ((n - 1) sum_c o_cc - sum_c n_c (n_c - 1)) / (n (n - 1) -
  sum_c n_c (n_c - 1));
- Cohen's kappa for each pair of raters, over the items both labelled (Cohen 1960), the model as one more rater;
- Fleiss' kappa over the items with the same number of labels (Fleiss 1971, "Measuring nominal scale agreement
  among many raters", Psychological Bulletin 76(5)): the most common count of two or more, its items named;
- each rater's accuracy and Cohen's kappa against a gold label per item, where one is given.
Each figure comes with a percentile bootstrap interval over items (resampled with replacement, seeded): every
resample is a vector of item weights, so the 1,000 resamples cost a few matrix products. A figure that is undefined
(one rater, one category, no shared item) is None with a reason, never NaN.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .explain import candidate_index, candidate_label

TIE, ALL_BAD = "tie", "all bad"
"""The two labels that choose no candidate."""
TIE_CHOICE, ALL_BAD_CHOICE = -1, -2
"""How the label store's integer `choice` column would hold them (LabelStore.record takes only candidates today)."""
MODEL = "model"
"""The model's column in `ratings`."""
RESAMPLES, LEVEL, SEED = 1000, 0.95, 0


def category(value) -> int | str | None:
    """A label as its category: a candidate index (an int, a whole float as pandas gives it, or a capital letter
    'B'), TIE, ALL_BAD, or None when missing. ValueError for anything else."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"not a label: {value!r}")
    if isinstance(value, (int, np.integer, float, np.floating)) and float(value).is_integer():
        k = int(value)
        if k >= 0:
            return k
        if k in (TIE_CHOICE, ALL_BAD_CHOICE):
            return TIE if k == TIE_CHOICE else ALL_BAD
    if isinstance(value, str):
        text = value.strip().lower()
        if text in (TIE, ALL_BAD):
            return text
        if value.strip().isupper():
            return candidate_index(value)  # 'B' -> 1; ValueError for anything but capital letters
    raise ValueError(f"not a label: {value!r}")


def category_name(value) -> str:
    """A category as people read it: 'A', 'B', ..., 'tie', 'all bad'."""
    return candidate_label(value) if isinstance(value, int) else str(value)


def model_column(names) -> str:
    """MODEL, or 'model (ArmoRM)', 'model (ArmoRM) 2', ... when an annotator took that name."""
    names, column, k = set(map(str, names)), MODEL, 1
    while column in names:
        column, k = f"{MODEL} (ArmoRM)" + (f" {k}" if k > 1 else ""), k + 1
    return column


def _file_names(frame: pd.DataFrame) -> dict[str, str]:
    """file_id -> what its items' keys start with: the file's name, or its id where names are missing or shared."""
    names = frame.groupby("file_id")["file"].first()
    if names.isna().any() or names.duplicated().any():
        return {f: f[:12] for f in names.index}
    return names.to_dict()


def ratings(frame: pd.DataFrame, model: bool = True) -> pd.DataFrame:
    """LabelStore.frame's labels as a table: one row per item (its id; 'file/id' when the labels span several
    files), one column per annotator (categories, None where they gave none) and, with `model`, a column for the
    candidate the model scored highest (from the first label's stored result; the model never says tie), named
    model_column(annotators) and recorded in the table's attrs["model"] (agreement_report finds it there)."""
    files = _file_names(frame) if len(frame) and frame["file_id"].nunique() > 1 else None
    table: dict[str, dict[str, object]] = {}
    top: dict[str, int] = {}
    for row in frame.itertuples():
        key = f"{files[row.file_id]}/{row.item_id}" if files else str(row.item_id)
        table.setdefault(str(row.annotator), {})[key] = category(row.choice)
        if model and key not in top:
            result = json.loads(row.result) if isinstance(row.result, str) else row.result
            top[key] = int(np.argmax(result["scores"]))
    out = pd.DataFrame(table, dtype=object)
    if model and len(out):
        column = model_column(out.columns)
        out[column] = pd.Series(top, dtype=object)
        out.attrs["model"] = column
    found = out.astype(object).where(out.notna(), None)
    found.attrs = dict(out.attrs)
    return found


# ---------------------------------------------------------------------------------------- the measures
def _order(value) -> tuple[int, int]:
    """Candidates first (A, B, ...), then tie, then all bad."""
    return (1, (TIE, ALL_BAD).index(value)) if isinstance(value, str) else (0, value)


def _codes(table: pd.DataFrame) -> tuple[np.ndarray, list]:
    """(items x raters codes, -1 where missing; the categories in code order)."""
    cats = [[category(v) for v in row] for row in table.to_numpy(dtype=object)]
    found = sorted({v for row in cats for v in row if v is not None}, key=_order)
    index = {c: k for k, c in enumerate(found)}
    codes = np.array([[index[v] if v is not None else -1 for v in row] for row in cats], dtype=int)
    return codes.reshape(table.shape), found


def _counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """items x categories: how many raters gave each category."""
    out = np.zeros((codes.shape[0], n_categories))
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(out, (rows, codes[rows, cols]), 1)
    return out


def _weights(n_items: int, resamples: int, seed: int) -> np.ndarray:
    """Item weights, one row per estimate: all ones (the figure itself), then `resamples` bootstrap resamples (how
    often each item was drawn in `n_items` draws with replacement: default_rng(seed).integers(0, n_items, (resamples,
    n_items)), the same draws for every figure over as many items). Whole numbers as floats: sums are exact."""
    draws = np.random.default_rng(seed).integers(0, n_items, (resamples, n_items))
    w = np.empty((resamples + 1, n_items))
    w[0] = 1
    w[1:] = np.bincount((draws + n_items * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n_items
                        ).reshape(resamples, n_items)  # fmt: skip
    return w


def _alpha(counts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Nominal alpha for each row of item weights `w` (estimates x items) of pairable items' category counts."""
    m = counts.sum(1)
    observed = (counts * (counts - 1)).sum(1) / (m - 1)  # sum_c o_cc of each unit
    n, n_c, o = w @ m, w @ counts, w @ observed
    same = (n_c * (n_c - 1)).sum(1)
    expected = n * (n - 1) - same  # whole numbers: zero exactly when one category is used
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, ((n - 1) * o - same) / expected, np.nan)


def _kappa(a: np.ndarray, b: np.ndarray, w: np.ndarray, n_categories: int) -> np.ndarray:
    """Cohen's kappa of two raters' codes over the same items, for each row of item weights: in counts,
    (N * agreed - sum_c a_c b_c) / (N^2 - sum_c a_c b_c); undefined when both give one and the same category."""
    eye = np.eye(n_categories)
    big_n, agreed = w.sum(1), w @ (a == b)
    chance = ((w @ eye[a]) * (w @ eye[b])).sum(1)
    denominator = big_n * big_n - chance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (big_n * agreed - chance) / denominator, np.nan)


def _fleiss(counts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fleiss' kappa of items that all have m labels, for each row of item weights (Fleiss 1971, eqs. 2-9)."""
    m = counts[0].sum()
    p_item = ((counts * counts).sum(1) - m) / (m * (m - 1))  # P_i
    big_n, totals = w.sum(1), w @ counts
    p_bar = (w @ p_item) / big_n
    p_e = ((totals / (big_n[:, None] * m)) ** 2).sum(1)
    one_category = (totals > 0).sum(1) <= 1  # P_e = 1 exactly
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(one_category, np.nan, (p_bar - p_e) / (1 - p_e))


def _figure(values: np.ndarray, reason: str, level: float, **extra) -> dict:
    """{value, low, high, reason, ...} from the figure (values[0]) and its resamples' values (the percentile
    interval of those that are defined; `undefined_resamples` counts the others)."""
    value, boot = values[0], values[1:]
    if not np.isfinite(value):
        return _none(reason, **extra)
    defined = boot[np.isfinite(boot)]
    low, high = np.quantile(defined, [(1 - level) / 2, (1 + level) / 2]).tolist() if len(defined) else (None, None)
    return {"value": float(value), "low": low, "high": high, "reason": None,
            "undefined_resamples": int(len(boot) - len(defined)), **extra}  # fmt: skip


def _none(reason: str, **extra) -> dict:
    return {"value": None, "low": None, "high": None, "reason": reason, **extra}


ONE_CATEGORY = "every label is the same category, so agreement beyond chance is undefined"
NO_PAIRS = "no item has labels from two raters"


def _alpha_figure(codes: np.ndarray, n_categories: int, resamples: int, level: float, seed: int, weights=None) -> dict:
    counts = _counts(codes, n_categories)
    pairable = counts.sum(1) >= 2
    if codes.shape[1] < 2:
        return _none("one rater: agreement needs two or more", items=0, labels=0)
    if not pairable.any():
        return _none(NO_PAIRS, items=0, labels=0)
    counts = counts[pairable]
    values = _alpha(counts, (weights or _weights)(len(counts), resamples, seed))
    return _figure(values, ONE_CATEGORY, level, items=int(len(counts)), labels=int(counts.sum()))


def _kappa_figure(
    a: np.ndarray, b: np.ndarray, n_categories: int, resamples: int, level: float, seed: int, weights=None
) -> dict:
    both = (a >= 0) & (b >= 0)
    if not both.any():
        return _none("no item labelled by both", items=0, agreement=None)
    x, y = a[both], b[both]
    values = _kappa(x, y, (weights or _weights)(len(x), resamples, seed), n_categories)
    return _figure(values, ONE_CATEGORY, level, items=int(both.sum()), agreement=float(np.mean(x == y)))


def _fleiss_figure(codes: np.ndarray, n_categories: int, names: list[str], resamples: int, level: float,
                   seed: int, weights=None) -> dict:  # fmt: skip
    counts = _counts(codes, n_categories)
    per_item = counts.sum(1).astype(int)
    sizes = pd.Series(per_item[per_item >= 2]).value_counts()
    if codes.shape[1] < 2 or sizes.empty:
        return _none(NO_PAIRS, raters_per_item=None, items=[])
    m = int(max(sizes.index, key=lambda k: (sizes[k], k)))
    used = per_item == m
    values = _fleiss(counts[used], (weights or _weights)(int(used.sum()), resamples, seed))
    return _figure(values, ONE_CATEGORY, level, raters_per_item=m, items=[n for n, u in zip(names, used) if u])


def _gold_figure(a: np.ndarray, gold: np.ndarray, n_categories: int, resamples: int, level: float,
                 seed: int, weights=None) -> dict:  # fmt: skip
    both = (a >= 0) & (gold >= 0)
    if not both.any():
        reason = "no item has both a label and a gold label"
        return {"items": 0, "accuracy": _none(reason), "kappa": _none(reason, items=0, agreement=None)}
    w = (weights or _weights)(int(both.sum()), resamples, seed)
    accuracy = _figure((w @ (a[both] == gold[both])) / w.sum(1), "", level)
    kappa = _kappa_figure(a, gold, n_categories, resamples, level, seed, weights)
    return {"items": int(both.sum()), "accuracy": accuracy, "kappa": kappa}


def krippendorff_alpha(table: pd.DataFrame, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> dict:
    """Nominal alpha over every column of `table` (items x raters); items with fewer than two labels are
    unpairable and left out, as Krippendorff (2011) does. `items` and `labels`: the pairable ones."""
    codes, found = _codes(table)
    return _alpha_figure(codes, len(found), resamples, level, seed)


def cohen_kappa(a: pd.Series, b: pd.Series, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> dict:
    """Cohen's kappa of two raters over the items both labelled (a and b indexed by item), with `agreement`: the
    share of those items they labelled alike."""
    codes, found = _codes(pd.concat([a, b], axis=1))
    return _kappa_figure(codes[:, 0], codes[:, 1], len(found), resamples, level, seed)


def fleiss_kappa(table: pd.DataFrame, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> dict:
    """Fleiss' kappa over the items with the most common number of labels (two or more; the larger number when
    two are as common): `raters_per_item` and the `items` used are said."""
    codes, found = _codes(table)
    return _fleiss_figure(codes, len(found), [str(i) for i in table.index], resamples, level, seed)


def gold_agreement(labels: pd.Series, gold: pd.Series, resamples: int = RESAMPLES, level: float = LEVEL,
                   seed: int = SEED) -> dict:  # fmt: skip
    """A rater against the gold labels, over the items that have both: accuracy and Cohen's kappa."""
    codes, found = _codes(pd.concat([labels, gold], axis=1))
    return _gold_figure(codes[:, 0], codes[:, 1], len(found), resamples, level, seed)


def agreement_report(table: pd.DataFrame, gold: Mapping | pd.Series | None = None, resamples: int = RESAMPLES,
                     level: float = LEVEL, seed: int = SEED, model: str | None = None) -> dict:  # fmt: skip
    """Every measure for `table` (items x raters; `ratings` makes it from the store's labels), as plain JSON-able
    values. The column named `model` (by default the one `ratings` made, else MODEL), if present, is a rater in the
    pairwise and gold figures and in `krippendorff_alpha_with_model`; alpha and Fleiss' kappa are between people.
    `gold`: item -> label, for the items that have one (items nobody labelled count for nothing)."""
    model = model or table.attrs.get("model", MODEL)
    table = table.astype(object)
    people = [c for c in table.columns if c != model]
    raters = people + ([model] if model in table.columns else [])
    if gold is not None:
        table = table.assign(**{"\0gold": pd.Series(gold, dtype=object).reindex(table.index)})
    codes, found = _codes(table)
    column = {c: codes[:, k] for k, c in enumerate(table.columns)}
    of = lambda names: np.stack([column[c] for c in names], axis=1) if names else codes[:, :0]  # noqa: E731
    options = {"resamples": resamples, "level": level, "seed": seed}
    # figures over as many items share their resamples' weights (the same draws): made once per report
    options["weights"] = functools.lru_cache(maxsize=4)(_weights)
    pairs = []
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            pairs.append({"a": str(a), "b": str(b), **_kappa_figure(column[a], column[b], len(found), **options)})
    report = {
        "items": int(len(table)),
        "raters": [str(r) for r in raters],
        "model": str(model) if model in table.columns else None,
        "labels": {str(r): int((column[r] >= 0).sum()) for r in raters},
        "categories": [category_name(c) for c in found],
        "krippendorff_alpha": _alpha_figure(of(people), len(found), **options),
        "fleiss_kappa": _fleiss_figure(of(people), len(found), [str(i) for i in table.index], **options),
        "cohen_kappa": pairs,
        "bootstrap": {"resamples": resamples, "level": level, "seed": seed, "over": "items"},
    }
    if model in table.columns:
        report["krippendorff_alpha_with_model"] = _alpha_figure(of(raters), len(found), **options)
    if gold is not None:
        g = column["\0gold"]
        report["gold"] = {str(r): _gold_figure(column[r], g, len(found), **options) for r in raters}
    return report


def agreement_table(report: dict) -> pd.DataFrame:
    """One row per figure of `agreement_report`: measure, raters, items, value, low, high, note (the reason a
    figure is undefined, or which items Fleiss' kappa used). For the UI's gr.Dataframe, rounded to 3 places."""

    def row(measure, raters, items, fig, note=""):
        return {"measure": measure, "raters": raters, "items": items,
                **{k: None if fig[k] is None else round(fig[k], 3) for k in ("value", "low", "high")},
                "note": fig["reason"] or note}  # fmt: skip

    people = ", ".join(r for r in report["raters"] if r != report["model"])
    rows = [row("Krippendorff's alpha", people, report["krippendorff_alpha"]["items"], report["krippendorff_alpha"])]
    if "krippendorff_alpha_with_model" in report:
        fig = report["krippendorff_alpha_with_model"]
        rows.append(row("Krippendorff's alpha", f"{people}, {report['model']}", fig["items"], fig))
    fleiss = report["fleiss_kappa"]
    used = f"items with {fleiss['raters_per_item']} labels each" if fleiss["raters_per_item"] else ""
    rows.append(row("Fleiss' kappa", people, len(fleiss["items"]), fleiss, used))
    for p in report["cohen_kappa"]:
        agreed = f"labelled alike on {p['agreement']:.0%}" if p["agreement"] is not None else ""
        rows.append(row("Cohen's kappa", f"{p['a']} & {p['b']}", p["items"], p, agreed))
    for rater, g in report.get("gold", {}).items():
        rows.append(row("accuracy vs gold", rater, g["items"], g["accuracy"]))
        rows.append(row("Cohen's kappa vs gold", rater, g["items"], g["kappa"]))
    return pd.DataFrame(rows, columns=["measure", "raters", "items", "value", "low", "high", "note"])
