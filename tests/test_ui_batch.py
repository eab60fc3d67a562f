"""The Batch file tab's handler: a file in, scored results out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from armorm_ui.validation import Limits

from .test_batch import ITEMS, expected_messages, wide_frame, write


def test_batch_tab_scores_a_file(tmp_path, scorer):
    from armorm_ui.ui.batch import score_file

    src = write(wide_frame(), tmp_path / "in.jsonl")
    seen = []
    out, summary = score_file(scorer, str(src), "Parquet", Limits(), 100, progress=lambda p, desc: seen.append(p))
    assert "3 items" in summary and seen == [(0, 3), (1, 3), (2, 3)]
    back = pd.read_parquet(out)
    api = scorer.score(expected_messages(ITEMS[0]), ITEMS[0]["responses"])
    np.testing.assert_allclose(back[back["item_id"] == "card"]["score"], api.scores, atol=1e-9)
