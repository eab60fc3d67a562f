"""Token attributions as words: positions mapped back to the text, tokens summed into words and segments, the target
a person asks for, and the whole path through the scorer (its slot, its checks) on the demo checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from armorm_ui import InputError, ScoringError
from armorm_ui.backend import TokenTarget
from armorm_ui.objectives import NAMES
from armorm_ui.segments import segment
from armorm_ui.token_attribution import Piece, explain_tokens, parse_target, segments_of, spearman, words_of

from .conftest import CARD_PROMPT, CARD_RESPONSES

CARD = [{"role": "user", "content": CARD_PROMPT}]


def test_targets_by_id_or_label_and_clear_refusals():
    assert parse_target() == TokenTarget("score")
    assert parse_target("reward", "helpsteer-verbosity") == TokenTarget("reward", NAMES.index("helpsteer-verbosity"))
    assert parse_target("coefficient", "Safe") == TokenTarget("coefficient", NAMES.index("beavertails-is_safe"))
    with pytest.raises(InputError, match="needs an objective"):
        parse_target("reward", None)
    with pytest.raises(InputError, match="score, reward or coefficient"):
        parse_target("logits")


def test_tokens_sum_into_words_and_segments_without_losing_any():
    text = "Sure thing. Here is why: it works."
    # tokens as a BPE tokenizer cuts them: leading spaces belong to the token, one word in two tokens
    cuts = ["Sure", " thing", ".", " Here", " is", " wh", "y", ":", " it", " works", "."]
    tokens, pos = [], 0
    rng = np.random.default_rng(0)
    for c in cuts:
        tokens.append(Piece(c, pos, pos + len(c), float(rng.normal())))
        pos += len(c)
    assert pos == len(text)
    words = words_of(text, tokens)
    assert [w.text for w in words] == text.split()
    assert [text[w.start : w.end] for w in words] == text.split()
    why = next(w for w in words if w.text == "why:")
    assert why.attribution == pytest.approx(sum(t.attribution for t in tokens[5:8]))
    assert [t for t, _ in why.parts] == [" wh", "y", ":"]  # the tokens behind the word, shown on hover
    assert sum(w.attribution for w in words) == pytest.approx(sum(t.attribution for t in tokens))
    segs = segments_of(segment(text), tokens)
    assert "".join(s.text for s in segs) == text and len(segs) == 2
    assert segs[0].attribution == pytest.approx(sum(t.attribution for t in tokens[:3]))
    assert sum(s.attribution for s in segs) == pytest.approx(sum(t.attribution for t in tokens))


def test_spearman_needs_three_finite_segments():
    assert spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])) is None
    assert spearman(np.array([1.0, 2.0, 3.0, np.nan]), np.array([3.0, 2.0, 1.0, 0.0])) == pytest.approx(-1.0)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_x_input"])
def test_the_response_words_of_the_card_answer(scorer, method):
    found = explain_tokens(scorer, CARD, CARD_RESPONSES[1], TokenTarget("score"), method, steps=16)
    text = CARD_RESPONSES[1]
    assert found.explains == "response" and found.target == "score"
    for t in found.tokens:  # every token's text is where it says in the response
        assert text[t.start : t.end] == t.text
    assert [w.text for w in found.words] == text.split()
    assert sum(w.attribution for w in found.words) == pytest.approx(sum(t.attribution for t in found.tokens))
    np.testing.assert_allclose(found.value, scorer.score(CARD, [text]).scores[0], atol=1e-5)
    assert "".join(s.text for s in found.segments) == text
    assert all(s.leave_one_out is not None for s in found.segments)
    assert found.spearman is not None and -1 <= found.spearman <= 1
    if method == "integrated_gradients":
        assert found.completeness_gap < 0.02  # 16 steps; the 1% bound at 64 steps is tests/test_gradients.py's


def test_a_coefficient_is_explained_by_the_conversation_words(scorer):
    messages = [{"role": "system", "content": "Answer briefly."}, *CARD]
    target = parse_target("coefficient", "beavertails-is_safe")
    found = explain_tokens(scorer, messages, CARD_RESPONSES[0], target, "integrated_gradients", steps=16)
    assert found.explains == "conversation" and found.target == "Safe coefficient"
    assert {w.message for w in found.words} == {0, 1}
    for w in found.words:
        assert messages[w.message]["content"][w.start : w.end] == w.text
    coefficient = scorer.score(messages, [CARD_RESPONSES[0]]).coefficients[target.objective]
    np.testing.assert_allclose(found.value, coefficient, atol=1e-6)
    assert found.segments == [] and found.spearman is None


def test_it_goes_through_the_request_checks_and_the_slot(scorer):
    with pytest.raises(InputError, match="Candidate A is empty|Candidate 1 is empty|empty"):
        explain_tokens(scorer, CARD, "   ", TokenTarget("score"))
    with pytest.raises(InputError, match="steps must be"):
        explain_tokens(scorer, CARD, "fine", TokenTarget("score"), "integrated_gradients", steps=0)
    with pytest.raises(ScoringError, match="cancelled"):
        explain_tokens(scorer, CARD, "fine", TokenTarget("score"), should_stop=lambda: True)
