"""Preference files in every layout people have, and Hugging Face data sets, read to the same pairs and scored to
the same per-pair scores as /score; bad rows reported with their line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from armorm_ui.batch import BatchError
from armorm_ui.errors import InputError
from armorm_ui.preferences import load_dataset_pairs, parse_columns, read_pairs
from armorm_ui.validation import Limits

from .conftest import CARD_PROMPT, CARD_RESPONSES

ROWS = [
    {"id": "card", "subset": "alpacaeval-easy", "prompt": CARD_PROMPT, "chosen": CARD_RESPONSES[1],
     "rejected": CARD_RESPONSES[0]},
    {"id": "sum", "subset": "hep-python", "prompt": "What is 2+2?", "chosen": "4.", "rejected": "It is 5."},
    {"id": "capital", "subset": "mine", "prompt": "Capital of France?", "chosen": "Paris.",
     "rejected": "Lyon, I think."},
]  # fmt: skip


def plain(tmp_path, suffix):
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"pairs{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[suffix]()  # fmt: skip
    return path


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def trl_explicit(r):  # TRL's conversational layout with an explicit prompt
    return {"id": r["id"], "subset": r["subset"], "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}]}  # fmt: skip


def trl_implicit(r):  # the prompt as the shared earlier turns of both conversations
    user = {"role": "user", "content": r["prompt"]}
    return {"id": r["id"], "subset": r["subset"], "chosen": [user, {"role": "assistant", "content": r["chosen"]}],
            "rejected": [user, {"role": "assistant", "content": r["rejected"]}]}  # fmt: skip


def rewardbench(r):  # RewardBench's layout: extra model columns
    return {**r, "chosen_model": "gpt-4", "rejected_model": "llama"}


LAYOUTS = {
    "csv": lambda tmp: plain(tmp, ".csv"),
    "jsonl": lambda tmp: plain(tmp, ".jsonl"),
    "parquet": lambda tmp: plain(tmp, ".parquet"),
    "trl explicit prompt": lambda tmp: jsonl(tmp / "trl.jsonl", [trl_explicit(r) for r in ROWS]),
    "trl implicit prompt": lambda tmp: jsonl(tmp / "trl2.jsonl", [trl_implicit(r) for r in ROWS]),
    "trl as json text in csv": lambda tmp: (
        pd.DataFrame(
            [{k: json.dumps(v) if isinstance(v, list) else v for k, v in trl_implicit(r).items()} for r in ROWS]
        ).to_csv(tmp / "trl.csv", index=False)
        or tmp / "trl.csv"
    ),
    "rewardbench": lambda tmp: jsonl(tmp / "rb.jsonl", [rewardbench(r) for r in ROWS]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_gives_the_same_pairs_and_scores_as_the_api(layout, tmp_path, scorer):
    pairs = read_pairs(LAYOUTS[layout](tmp_path), Limits())
    assert [(p.pair_id, p.subset, p.chosen, p.rejected) for p in pairs] == [
        (r["id"], r["subset"], r["chosen"], r["rejected"]) for r in ROWS
    ]
    for pair, row in zip(pairs, ROWS):
        assert pair.messages == [{"role": "user", "content": row["prompt"]}]
        item = pair.item()
        api = scorer.score([{"role": "user", "content": row["prompt"]}], [row["chosen"], row["rejected"]])
        np.testing.assert_allclose(scorer.score(item.messages, item.candidates).scores, api.scores, atol=1e-9)


def test_a_saved_data_set_loads_by_path_through_the_same_code_as_by_name(tmp_path, monkeypatch):
    import datasets

    data = datasets.Dataset.from_list([rewardbench(r) for r in ROWS])
    datasets.DatasetDict({"filtered": data}).save_to_disk(str(tmp_path / "rb"))
    by_path, key = load_dataset_pairs(str(tmp_path / "rb"), "filtered", Limits())
    assert [p.pair_id for p in by_path] == ["card", "sum", "capital"] and "filtered" in key
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: asked.append((name, split)) or data)
    by_name, _ = load_dataset_pairs("allenai/reward-bench", "filtered", Limits())
    assert asked == [("allenai/reward-bench", "filtered")] and by_name == by_path
    sample, _ = load_dataset_pairs(str(tmp_path / "rb"), "filtered", Limits(), sample=2, seed=3)
    assert len(sample) == 2 and {p.pair_id for p in sample} <= {"card", "sum", "capital"}
    with pytest.raises(InputError, match="no split 'train'"):
        load_dataset_pairs(str(tmp_path / "rb"), "train", Limits())


def test_column_mapping(tmp_path):
    path = tmp_path / "other.jsonl"
    jsonl(path, [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in ROWS])
    pairs = read_pairs(path, Limits(), mapping=parse_columns("prompt=question, chosen=good,rejected=bad"))
    assert [p.chosen for p in pairs] == [r["chosen"] for r in ROWS] and [p.pair_id for p in pairs] == ["1", "2", "3"]
    with pytest.raises(BatchError, match="no 'chosen' or 'rejected' column"):
        read_pairs(path, Limits())
    with pytest.raises(InputError, match="NAME=COLUMN"):
        parse_columns("answer=good")


def test_every_bad_row_is_reported_with_its_line(tmp_path):
    user = {"role": "user", "content": "q"}
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "ok"},
        {"prompt": "q", "chosen": "", "rejected": "b", "id": "empty"},
        {"chosen": [user, {"role": "assistant", "content": "a"}], "rejected": [user], "id": "no-answer"},
        {"chosen": [user, {"role": "assistant", "content": "a"}],
         "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}], "id": "differ"},
        {"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}], "id": "mixed"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "ok"},
        {"prompt": "", "chosen": "a", "rejected": "b", "id": "no-prompt"},
        {"prompt": "q", "chosen": 3, "rejected": "b", "id": "number"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "nul", "subset": "chat\u0000hard"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "bidi", "subset": "\u202eeasy"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "long", "subset": "s" * 201},
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "dict", "subset": {"a": 1}},
    ]  # fmt: skip
    with pytest.raises(BatchError) as e:
        read_pairs(jsonl(tmp_path / "bad.jsonl", rows), Limits())
    assert e.value.problems == [
        "line 2: chosen is empty",
        "line 3: chosen and rejected must end with an assistant message",
        "line 4: chosen and rejected have different earlier turns; a pair answers the same conversation",
        "line 5: chosen and rejected must both be text or both be message lists",
        "line 6: id 'ok' already used on line 1",
        "line 7: prompt is empty",
        'line 8: chosen must be text or a list of {"role", "content"} messages',
        "line 9: The subset contains a NUL character at character 5. Remove it.",
        "line 10: The subset contains the bidirectional control U+202E at character 1, which makes the text display "
        "differently from what the model reads. Remove it.",
        "line 11: The subset is 201 characters long; the limit is 200. Shorten it.",
        "line 12: subset is dict; a name is expected",
    ]
