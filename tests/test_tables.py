"""Tables and exports."""

from __future__ import annotations

import pandas as pd

from armorm_ui import tables


def test_csv_escapes_formulas():
    frame = pd.DataFrame({"response": ["=HYPERLINK(1)", "+1", "plain", "@x"], "score": [-1.0, 0.5, 1, 2]})
    text = tables.to_csv(frame)
    assert "'=HYPERLINK(1)" in text and "'+1" in text and "'@x" in text and "\nplain," in text
    assert "-1.0" in text  # numbers stay numbers
