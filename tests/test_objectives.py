import numpy as np

from armorm_ui.objectives import HELPSTEER, NAMES, NUM_OBJECTIVES, OBJECTIVES, VERBOSITY_INDEX

CARD_ATTRIBUTES = [  # the model card's list, verbatim
    "helpsteer-helpfulness",
    "helpsteer-correctness",
    "helpsteer-coherence",
    "helpsteer-complexity",
    "helpsteer-verbosity",
    "ultrafeedback-overall_score",
    "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness",
    "ultrafeedback-honesty",
    "ultrafeedback-helpfulness",
    "beavertails-is_safe",
    "prometheus-score",
    "argilla-overall_quality",
    "argilla-judge_lm",
    "code-complexity",
    "code-style",
    "code-explanation",
    "code-instruction-following",
    "code-readability",
]


def test_order_matches_the_model_card():
    assert list(NAMES) == CARD_ATTRIBUTES and NUM_OBJECTIVES == 19
    assert [o.index for o in OBJECTIVES] == list(range(19))
    assert VERBOSITY_INDEX == 4


def test_native_scales():
    r = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(HELPSTEER[0].to_native(r), r * 5 - 0.5)  # model card
    np.testing.assert_allclose(OBJECTIVES[5].to_native(r), r * 10 + 0.5)  # authors, issue 57
    np.testing.assert_allclose(OBJECTIVES[6].to_native(r), r * 5 + 0.5)
    np.testing.assert_allclose(OBJECTIVES[10].to_native(r), r)  # P(safe)
    # bin centres: the lowest and highest labels map back onto the ends of the scale
    for o in OBJECTIVES:
        if not o.boolean:
            assert o.to_native((0.5) / o.levels) == o.low
            assert o.to_native((o.levels - 0.5) / o.levels) == o.high


def test_confirmed_versus_inferred():
    confirmed = {o.name for o in OBJECTIVES if o.confirmed}
    assert confirmed == set(CARD_ATTRIBUTES[:6]) | {"beavertails-is_safe"}
