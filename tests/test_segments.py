"""Segments: sentences (pysbd), list items, lines of code; they always join back to the text. And the tooltip that
says which way leaving a segment out moves the score."""

from __future__ import annotations

import html
import re
from unittest import mock

import numpy as np
import pysbd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from armorm_ui import tables
from armorm_ui.segments import SENTENCE_END, coarsen, first, segment, without

from .conftest import CARD_RESPONSES

CODE = "Use slicing:\n\n```python\nitems = [1, 2, 3]\nrev = items[::-1]\nprint(rev)\n```\nOr call `items.reverse()`."

PIECES = [
    "a", "Word", " ", "  ", "\n", "\n\n", "\t", "\r\n", ".", "!", "?", "...", "…", "。", '"', "'", "(", ")",
    "e.g.", "i.e.", "Dr.", "Mr.", "3.14", "v1.2.3", "https://example.com/a.b?c=d", "`a.b()`", "`",
    "```", "```python\n", "- ", "* ", "+ ", "• ", "1. ", "2) ", "é", "東", "🙂", "∯", "ȸ", "\u00a0", "\x00",
]  # fmt: skip
TEXTS = st.lists(st.sampled_from(PIECES), max_size=60).map("".join) | st.text(max_size=200)


def check(text: str, segs: list[str]) -> None:
    assert "".join(segs) == text
    assert all(segs) and (len(segs) <= 1 or all(s.strip() for s in segs))  # no empty or blank-only segment


@settings(max_examples=300, deadline=None)
@given(TEXTS)
@example("\n \n1")  # whitespace alone before the first segment
@example("See https://example.com/a.b?c=d. Then `x. Y` and ```\na\nb\nc\n``` end")
def test_segments_round_trip(text):
    check(text, segment(text))


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_segments_round_trip_when_pysbd_loses_text(text):
    """pysbd dropping or rewriting characters, or failing, falls back to the plain split: the join still holds."""

    def lossy(self, t):
        return [pysbd.utils.TextSpan(t[1:], 1, len(t))] if t else []

    for broken in (lossy, mock.Mock(side_effect=RuntimeError("pysbd")), lambda self, t: []):
        with mock.patch.object(pysbd.Segmenter, "segment", broken):
            check(text, segment(text))


def test_fallback_is_the_plain_split():
    with mock.patch.object(pysbd.Segmenter, "segment", lambda self, t: [pysbd.utils.TextSpan("One.", 0, 4)]):
        assert segment("One. Two! Three?") == ["One.", " Two!", " Three?"]
    assert SENTENCE_END.split("One. Two") == ["One.", " Two"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("See e.g. the docs. Dr. Smith agrees.", ["See e.g. the docs.", " Dr. Smith agrees."]),
        ("That is, i.e. this one. Mr. Jones came.", ["That is, i.e. this one.", " Mr. Jones came."]),
        ("Pi is about 3.14 here. Python 3.11.4 is out.", ["Pi is about 3.14 here.", " Python 3.11.4 is out."]),
        ("Go to https://example.com/a.b?c=d now. Then.", ["Go to https://example.com/a.b?c=d now.", " Then."]),
        ("Read https://example.com/a.b. Then stop.", ["Read https://example.com/a.b.", " Then stop."]),
        ("Call `a.b()` first. Then run.", ["Call `a.b()` first.", " Then run."]),
        ("Run `x = 1. Y? z` now. Done.", ["Run `x = 1. Y? z` now.", " Done."]),
        ("Wait... what? Yes.", ["Wait... what?", " Yes."]),
        ('He said "Stop. Now." and left. OK.', ['He said "Stop. Now." and left.', " OK."]),
        ("One. Two! Three?", ["One.", " Two!", " Three?"]),
        ("  Lead. Then  more. ", ["  Lead.", " Then  more. "]),
        ("- One. Two.\n* Three. Four.\n12) Five. Six.", ["- One. Two.", "\n* Three. Four.", "\n12) Five. Six."]),
    ],
)  # fmt: skip
def test_sentences(text, expected):
    assert segment(text) == expected


def test_segments_fit_the_text():
    assert segment(CARD_RESPONSES[1])[:4] == [
        "Certainly!",
        ' Here are some synonyms for the word "beautiful":',
        "\n\n1. Gorgeous",
        "\n2. Lovely",
    ]
    assert segment(CARD_RESPONSES[1])[-1].startswith("\n\nThese synonyms can be used")
    code = segment(CODE)
    assert code == [
        "Use slicing:",
        "\n\n```python\nitems = [1, 2, 3]",  # the opening fence stays with the first line
        "\nrev = items[::-1]",
        "\nprint(rev)\n```",  # and the closing one with the last
        "\nOr call `items.reverse()`.",
    ]
    assert without(code, 2).count("```") == 2  # leaving out a line keeps the block well formed
    short = "Short:\n```\nx = 1. Y = 2\n```\nDone."
    assert segment(short) == ["Short:", "\n```\nx = 1. Y = 2\n```", "\nDone."]  # a block of one line stays whole
    assert segment("```\na. B\nc\nd\n```") == ["```\na. B", "\nc", "\nd\n```"]  # code lines are not sentences


def test_coarsen_first_without():
    segs = segment("One. Two. Three. Four. Five.")
    assert len(segs) == 5 and coarsen(segs, 2) == ["One. Two. Three.", " Four. Five."] and coarsen(segs, 5) == segs
    assert first(segs, 2) == "One. Two." and without(segs, 0) == " Two. Three. Four. Five."


def titles(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'title="([^"]*)"', page)]


def test_tooltip_states_the_direction():
    effects = np.array([0.00498, -0.0123, 0.0, 4e-9, np.nan])
    tips = titles(tables.shaded_html(["A.", " B.", " C.", " D.", " E."], effects, "score"))
    assert tips == [
        "segment 1: leaving this out lowers the score by 0.00498",  # effect = full - without > 0
        "segment 2: leaving this out raises the score by 0.01230",
        "segment 3: leaving this out does not change the score",
        "segment 4: leaving this out does not change the score",  # below the digits shown
        "segment 5: cannot be left out (it is the whole response)",
    ]
    tips = titles(tables.shaded_html(["A.", " B."], np.array([-0.5, 0.25]), "Helpfulness reward"))
    assert tips == [
        "segment 1: leaving this out raises the Helpfulness reward by 0.50000",
        "segment 2: leaving this out lowers the Helpfulness reward by 0.25000",
    ]
