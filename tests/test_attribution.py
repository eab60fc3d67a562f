"""Leave-one-out attribution: exact against scoring each variant directly. (Segments: test_segments.py.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from armorm_ui.attribution import attribute
from armorm_ui.backend.packing import variant_batch_inputs
from armorm_ui.cli import main as cli
from armorm_ui.segments import first, without

from .conftest import CARD_PROMPT, CARD_RESPONSES

CODE = "Use slicing:\n\n```python\nitems = [1, 2, 3]\nrev = items[::-1]\nprint(rev)\n```\nOr call `items.reverse()`."


def test_variant_mask():
    inp = variant_batch_inputs(3, [2, 0], [[9, 8], [7]], "cpu")
    m = inp["attention_mask"][:, 0]
    assert inp["cache_len"] == 5 and inp["position_ids"].tolist() == [[5, 6], [3, 4]]
    assert m[0, 1].tolist() == [True] * 5 + [True, True]  # conversation + 2 shared tokens + own
    assert m[1, 0].tolist() == [True, True, True, False, False, True, False]  # base tokens beyond its share: hidden


def test_attribution_equals_direct_scoring(scorer):
    conversations = [
        [{"role": "user", "content": CARD_PROMPT}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse a list."},
         {"role": "assistant", "content": "Which language?"}, {"role": "user", "content": "Python."}],
    ]  # fmt: skip
    for messages, response in zip(conversations, [CARD_RESPONSES[1], CODE]):
        found = attribute(scorer, messages, response)
        full = scorer.score(messages, [response])
        assert found.score == np.float64(found.score) and abs(found.score - full.scores[0]) < 1e-5
        for i in range(len(found.segments)):
            variant = scorer.score(messages, [without(found.segments, i)])
            assert abs(found.effects[i] - (full.scores[0] - variant.scores[0])) < 1e-5
            np.testing.assert_allclose(found.reward_effects[i], full.rewards[0] - variant.rewards[0], atol=1e-5)
        for k in range(1, len(found.segments) + 1):
            assert (
                abs(found.trimmed_scores[k - 1] - scorer.score(messages, [first(found.segments, k)]).scores[0]) < 1e-5
            )


def test_a_single_segment_cannot_be_left_out(scorer):
    found = attribute(scorer, [{"role": "user", "content": "Hi"}], "Hello")
    assert found.segments == ["Hello"] and np.isnan(found.effects[0])
    assert json.loads(json.dumps(found.to_dict()))["effects"] == [None]


def test_cli_attribute_columns(tmp_path, demo_dir, scorer):
    src = tmp_path / "in.csv"
    pd.DataFrame([{"prompt": CARD_PROMPT, "response_1": CARD_RESPONSES[1], "response_2": CARD_RESPONSES[2]}]).to_csv(
        src, index=False
    )
    out = tmp_path / "out.jsonl"
    assert cli(["score", str(src), "-o", str(out), "--model", str(demo_dir), "--device", "cpu", "--attribute"]) == 0
    rows = pd.read_json(out, lines=True)
    effects = json.loads(rows.loc[0, "segment_effects"])
    direct = attribute(scorer, [{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES[1])
    np.testing.assert_allclose(effects, direct.effects, atol=1e-6)
    assert json.loads(rows.loc[0, "segments"]) == direct.segments


def test_a_long_answer_is_explained_in_runs_and_says_so(scorer):
    """More parts than MAX_SEGMENTS: neighbours are left out together, the runs join back into the answer, and the
    page says so above the shaded answer."""
    from armorm_ui.attribution import MAX_SEGMENTS
    from armorm_ui.segments import segment

    answer = " ".join(f"Point {i} is short." for i in range(MAX_SEGMENTS + 12))
    found = attribute(scorer, [{"role": "user", "content": "List points."}], answer).to_dict()
    assert len(segment(answer)) == found["found_segments"] > MAX_SEGMENTS >= len(found["segments"])
    assert "".join(found["segments"]) == answer
    short = attribute(scorer, [{"role": "user", "content": "Hi"}], "One. Two.").to_dict()
    assert short["found_segments"] == len(short["segments"]) == 2
