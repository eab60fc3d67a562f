"""Preference files in every layout people have, and Hugging Face data sets, read to the same pairs and scored to
the same per-pair scores as /score; bad rows reported with their line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from armorm_ui.batch import BatchError
from armorm_ui.errors import InputError
from armorm_ui.preferences import (
    load_dataset_comparisons,
    load_dataset_pairs,
    parse_columns,
    read_comparisons,
    read_pairs,
)
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
        'line 8: chosen must be text, a list of texts or a list of {"role", "content"} messages',
        "line 9: The subset contains a NUL character at character 5. Remove it.",
        "line 10: The subset contains the bidirectional control U+202E at character 1, which makes the text display "
        "differently from what the model reads. Remove it.",
        "line 11: The subset is 201 characters long; the limit is 200. Shorten it.",
        "line 12: subset is dict; a name is expected",
    ]


# Several answers a prompt: allenai/reward-bench-2 (best-of-N, with Ties rows of several chosen), THU-KEG/RM-Bench
# (3 x 3 by style), HuggingFaceH4/ultrafeedback_binarized (TRL conversational, extra columns), Anthropic/hh-rlhf
# (whole transcripts).

RB2 = [
    {"id": 11, "prompt": "What is 2+2?", "chosen": ["4."], "rejected": ["5.", "22.", "It is 3."], "num_correct": 1,
     "num_incorrect": 3, "total_completions": 4, "models": ["a", "b", "c", "d"], "subset": "Math",
     "additional_metadata": {"note": "x"}},
    {"id": 12, "prompt": "Name a primary colour.", "chosen": ["Red.", "Blue."], "rejected": ["Green.", "Pink."],
     "num_correct": 2, "num_incorrect": 2, "total_completions": 4, "models": ["a", "b", "c", "d"], "subset": "Ties",
     "additional_metadata": {"note": "y"}},
]  # fmt: skip
RB2_EXTRA = "Ignored 5 columns the evaluation does not use: num_correct, num_incorrect, total_completions, models, "
RB2_EXTRA += "additional_metadata."
RM_BENCH = [
    {"id": 1, "prompt": "Say hi.", "chosen": ["Hi.", "Hi there, friend.", "**Hi** there."],
     "rejected": ["Bye.", "Goodbye, friend.", "**Bye** now."], "domain": "chat"},
    {"id": 2, "prompt": "2*3?", "chosen": ["6", "It is 6.", "It is **6**."], "rejected": ["5", "It is 5.", "**5**"],
     "domain": "math"},
]  # fmt: skip
HH = [
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+2?\n\nAssistant: 4.",
     "rejected": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+2?\n\nAssistant: 5."},
    {"chosen": "Human: Capital of France?\n\nAssistant: Paris.",
     "rejected": "Human: Capital of France?\n\nAssistant: Lyon."},
]  # fmt: skip


def ultrafeedback(r):  # HuggingFaceH4/ultrafeedback_binarized
    user = {"role": "user", "content": r["prompt"]}
    chosen = [user, {"role": "assistant", "content": r["chosen"]}]
    rejected = [user, {"role": "assistant", "content": r["rejected"]}]
    return {"prompt": r["prompt"], "prompt_id": f"h{r['id']}", "chosen": chosen, "rejected": rejected,
            "messages": chosen, "score_chosen": 8.0, "score_rejected": 4.5}  # fmt: skip


def write(tmp_path, rows, suffix):
    """JSONL, Parquet, or CSV with every list and dict as JSON text."""
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        return jsonl(path, rows)
    if suffix == ".csv":
        rows = [{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in rows]
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    return path


def summary(found):
    return [(c.comparison_id, c.subset, c.messages, c.chosen, c.rejected) for c in found.comparisons]


def user(text):
    return [{"role": "user", "content": text}]


SUFFIXES = [".jsonl", ".csv", ".parquet"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_reward_bench_2_best_of_n_with_a_ties_row(suffix, tmp_path):
    found = read_comparisons(write(tmp_path, RB2, suffix), Limits())
    assert found.layout == "best_of_n" and found.notes == [RB2_EXTRA]
    assert summary(found) == [
        ("11", "Math", user("What is 2+2?"), ("4.",), ("5.", "22.", "It is 3.")),
        ("12", "Ties", user("Name a primary colour."), ("Red.", "Blue."), ("Green.", "Pink.")),
    ]
    item = found.comparisons[1].item()
    assert (item.item_id, item.candidates, item.line) == (
        "12",
        ["Red.", "Blue.", "Green.", "Pink."],
        2 + (suffix == ".csv"),
    )


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_rm_bench_three_by_three_with_its_domain_as_subset(suffix, tmp_path):
    found = read_comparisons(write(tmp_path, RM_BENCH, suffix), Limits())
    assert found.layout == "rm_bench" and found.notes == []
    assert summary(found) == [
        ("1", "chat", user("Say hi."), ("Hi.", "Hi there, friend.", "**Hi** there."),
         ("Bye.", "Goodbye, friend.", "**Bye** now.")),
        ("2", "math", user("2*3?"), ("6", "It is 6.", "It is **6**."), ("5", "It is 5.", "**5**")),
    ]  # fmt: skip
    no_domain = write(tmp_path, [{k: v for k, v in r.items() if k != "domain"} for r in RM_BENCH], suffix)
    assert read_comparisons(no_domain, Limits()).layout == "best_of_n"  # 3 x 3 alone is not RM-Bench
    assert read_comparisons(no_domain, Limits(), layout="rm_bench").layout == "rm_bench"
    assert read_comparisons(write(tmp_path, RM_BENCH[:1] + RB2[:1], ".jsonl"), Limits()).layout == "best_of_n"
    with pytest.raises(InputError, match="Unknown layout 'ties'"):
        read_comparisons(no_domain, Limits(), layout="ties")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_ultrafeedback_binarized_with_its_extra_columns(suffix, tmp_path):
    path = write(tmp_path, [ultrafeedback(r) for r in ROWS], suffix)
    found = read_comparisons(path, Limits())
    assert found.layout == "pairs"
    assert found.notes == ["Ignored 4 columns the evaluation does not use: prompt_id, messages, score_chosen, "
                           "score_rejected."]  # fmt: skip
    assert summary(found) == [(str(k), "all", user(r["prompt"]), (r["chosen"],), (r["rejected"],))
                              for k, r in enumerate(ROWS, start=1)]  # fmt: skip
    assert [(p.pair_id, p.chosen, p.rejected) for p in read_pairs(path, Limits())] == [
        (str(k), r["chosen"], r["rejected"]) for k, r in enumerate(ROWS, start=1)
    ]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_hh_rlhf_transcripts_split_into_turns(suffix, tmp_path):
    found = read_comparisons(write(tmp_path, HH, suffix), Limits())
    assert found.layout == "pairs" and found.notes == []
    earlier = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
               {"role": "user", "content": "What is 2+2?"}]  # fmt: skip
    assert summary(found) == [("1", "all", earlier, ("4.",), ("5.",)),
                              ("2", "all", user("Capital of France?"), ("Paris.",), ("Lyon.",))]  # fmt: skip
    assert [p.messages for p in read_pairs(write(tmp_path, HH, suffix), Limits())] == [
        earlier,
        user("Capital of France?"),
    ]


def test_a_saved_reward_bench_2_folder_loads_by_path(tmp_path):
    import datasets

    datasets.DatasetDict({"test": datasets.Dataset.from_list(RB2)}).save_to_disk(str(tmp_path / "rb2"))
    found, key = load_dataset_comparisons(str(tmp_path / "rb2"), "test", Limits())
    assert found.layout == "best_of_n" and found.notes == [RB2_EXTRA] and "test" in key
    assert summary(found) == summary(read_comparisons(write(tmp_path, RB2, ".jsonl"), Limits()))
    sample, same_key = load_dataset_comparisons(str(tmp_path / "rb2"), "test", Limits(), sample=1, seed=2)
    assert len(sample.comparisons) == 1 and same_key == key
    with pytest.raises(BatchError, match="line 1: 1 chosen and 3 rejected answers; a pair has one of each"):
        load_dataset_pairs(str(tmp_path / "rb2"), "test", Limits())


def test_a_hub_name_without_the_hub_says_what_to_do(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # in case either was imported before the variable
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as e:
        load_dataset_comparisons("allenai/reward-bench-2", "test", Limits())
    assert str(e.value) == (
        "Could not reach the Hugging Face Hub to load allenai/reward-bench-2: offline mode is on (HF_HUB_OFFLINE). "
        "Download it where the hub is reachable (datasets' save_to_disk) and give the folder."
    )


def test_extra_columns_give_one_note_and_a_missing_one_refuses(tmp_path):
    rows = [{**r, "chosen_model": "m1", "rejected_model": "m2", "\u202eodd": 1} for r in ROWS]
    found = read_comparisons(jsonl(tmp_path / "extra.jsonl", rows), Limits())
    assert found.notes == ["Ignored 3 columns the evaluation does not use: chosen_model, rejected_model, '\\u202eodd'."]
    assert len(read_pairs(tmp_path / "extra.jsonl", Limits())) == 3  # extra columns no longer refuse pairs
    with pytest.raises(BatchError, match="no 'rejected' column; found: id, subset, prompt, chosen"):
        read_comparisons(jsonl(tmp_path / "half.jsonl", [{k: v for k, v in r.items() if k != "rejected"}
                                                         for r in ROWS]), Limits())  # fmt: skip
    mapped = read_comparisons(write(tmp_path, [{**r, "category": r.pop("domain")} for r in map(dict, RM_BENCH)],
                                    ".jsonl"), Limits(), mapping=parse_columns("domain=category"))  # fmt: skip
    assert mapped.layout == "rm_bench" and [c.subset for c in mapped.comparisons] == ["chat", "math"]


def test_every_bad_row_of_several_answers_or_transcripts_is_reported_with_its_line(tmp_path):
    hh = [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: 2+2?\n\nAssistant: 4.",
         "rejected": "\n\nHuman: Hey\n\nAssistant: Hello.\n\nHuman: 2+2?\n\nAssistant: 5."},
        {"chosen": "\n\nHuman: 2+2?\n\nAssistant:", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5."},
        {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4.", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5.\n\nHuman: ?"},
        {"chosen": "Human: 2+2?\n\nAssistant: 4.", "rejected": "Human: 2+2?\n\nAssistant: 5."},
    ]  # fmt: skip
    with pytest.raises(BatchError) as e:
        read_comparisons(jsonl(tmp_path / "hh.jsonl", hh), Limits())
    assert e.value.problems == [
        "line 1: chosen and rejected have different earlier turns; a pair answers the same conversation",
        "line 2: the chosen answer is empty",
        "line 3: the rejected transcript does not end with an Assistant turn",
    ]
    lists = [
        {"prompt": "q", "chosen": ["a", 3], "rejected": ["b"]},
        {"prompt": "q", "chosen": ["a"], "rejected": ["b", ""]},
        {"prompt": "q", "chosen": ["a", "\u202eb"], "rejected": ["c"]},
        {"prompt": "q", "chosen": ["a"] * 9, "rejected": ["b"] * 8},
        {"prompt": "q", "chosen": [], "rejected": ["b"]},
        {"prompt": "q", "chosen": ["a"], "rejected": ["b", "c"]},
    ]
    with pytest.raises(BatchError) as e:
        read_comparisons(write(tmp_path, lists, ".csv"), Limits())
    assert e.value.problems == [
        "line 2: chosen answer 2 is int; a list of answers holds texts",
        "line 3: the rejected answer 2 is empty",
        "line 4: The chosen answer 2 contains the bidirectional control U+202E at character 1, which makes the text "
        "display differently from what the model reads. Remove it.",
        "line 5: 17 candidates; the limit is 16 per request.",
        "line 6: chosen is empty",
    ]
    rm = [RM_BENCH[0], {**RM_BENCH[1], "chosen": RM_BENCH[1]["chosen"][:2]}]
    with pytest.raises(BatchError) as e:
        read_comparisons(jsonl(tmp_path / "rm.jsonl", rm), Limits(), layout="rm_bench")
    assert e.value.problems == ["line 2: 2 chosen and 3 rejected answers; an RM-Bench row has 3 of each (concise, "
                                "detailed plain text, detailed markdown)"]  # fmt: skip
    with pytest.raises(BatchError) as e:
        read_pairs(jsonl(tmp_path / "rb2.jsonl", RB2), Limits())
    assert e.value.problems == [
        "line 1: 1 chosen and 3 rejected answers; a pair has one of each (score several answers with evaluate)",
        "line 2: 2 chosen and 2 rejected answers; a pair has one of each (score several answers with evaluate)",
    ]


def test_a_list_of_texts_is_read_from_json_text_only_in_a_csv(tmp_path):
    row = {"prompt": "Give a JSON list.", "chosen": '["a", "b"]', "rejected": "no"}
    assert read_comparisons(jsonl(tmp_path / "t.jsonl", [row]), Limits()).comparisons[0].chosen == ('["a", "b"]',)
    assert read_comparisons(write(tmp_path, [row], ".csv"), Limits()).comparisons[0].chosen == ("a", "b")


def test_a_hub_out_of_reach_or_a_name_that_fails_gives_one_short_line(monkeypatch):
    import datasets

    def unreachable(name, split):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (ConnectError)")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(InputError, match=r"^Could not reach the Hugging Face Hub to load org/set: no network "):
        load_dataset_comparisons("org/set", "test", Limits())

    def missing(name, split):
        raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub\nor cannot be accessed.")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(InputError) as e:
        load_dataset_pairs("org/set", "test", Limits())
    assert (
        str(e.value)
        == "The data set org/set (split test) could not be loaded: Dataset 'org/set' doesn't exist on the Hub"
    )
