"""The 19 ArmoRM objectives, in the order of the regression head's rows.

One place for the domain vocabulary: names, labels, source datasets and native scales.
Sources: the model card's `attributes` list (order) and its HelpSteer example (scale). Rewards were trained on labels
normalised by a "bin centre" rule: for an integer scale lo..hi with K = hi - lo + 1 levels, r = (x - lo + 0.5) / K,
so the native value is K * r + lo - 0.5. The HelpSteer case (5r - 0.5) is on the model card and the UltraFeedback
overall score (10r + 0.5) was confirmed by the authors (RLHF-Reward-Modeling issue 57); the other scales are
inferred from the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Objective:
    index: int
    """Row of the regression head (0..18)."""
    name: str
    """The model card's attribute name, e.g. 'helpsteer-helpfulness'."""
    label: str
    """Short human label for charts."""
    source: str
    """Dataset the objective was trained on."""
    group: str
    """Display group: HelpSteer, UltraFeedback, Safety, Judges, Code."""
    low: int
    """Lowest value of the native scale."""
    high: int
    """Highest value of the native scale."""
    confirmed: bool
    """True when the reward -> native mapping is confirmed by a primary source, False when inferred."""
    boolean: bool = False
    """True for a yes/no label (the reward reads as a probability)."""

    @property
    def levels(self) -> int:
        return self.high - self.low + 1

    @property
    def scale_text(self) -> str:
        if self.boolean:
            return "P(safe), 0-1"
        return f"{self.low}-{self.high}"

    def to_native(self, reward):
        """Map a raw reward (or an array of them) to the native scale, unclamped."""
        if self.boolean:
            return np.asarray(reward, dtype=np.float64)
        return self.levels * np.asarray(reward, dtype=np.float64) + self.low - 0.5


def _make() -> tuple[Objective, ...]:
    hs = "nvidia/HelpSteer"
    uf = "openbmb/UltraFeedback"
    cuf = "coseal/CodeUltraFeedback"
    rows = [
        # name, label, source, group, low, high, confirmed
        ("helpsteer-helpfulness", "Helpfulness", hs, "HelpSteer", 0, 4, True),
        ("helpsteer-correctness", "Correctness", hs, "HelpSteer", 0, 4, True),
        ("helpsteer-coherence", "Coherence", hs, "HelpSteer", 0, 4, True),
        ("helpsteer-complexity", "Complexity", hs, "HelpSteer", 0, 4, True),
        ("helpsteer-verbosity", "Verbosity", hs, "HelpSteer", 0, 4, True),
        ("ultrafeedback-overall_score", "UF overall", uf, "UltraFeedback", 1, 10, True),
        ("ultrafeedback-instruction_following", "UF instruction following", uf, "UltraFeedback", 1, 5, False),
        ("ultrafeedback-truthfulness", "UF truthfulness", uf, "UltraFeedback", 1, 5, False),
        ("ultrafeedback-honesty", "UF honesty", uf, "UltraFeedback", 1, 5, False),
        ("ultrafeedback-helpfulness", "UF helpfulness", uf, "UltraFeedback", 1, 5, False),
        ("beavertails-is_safe", "Safe", "PKU-Alignment/BeaverTails", "Safety", 0, 1, True),
        ("prometheus-score", "Prometheus", "prometheus-eval/Feedback-Collection", "Judges", 1, 5, False),
        ("argilla-overall_quality", "Argilla quality", "argilla/Capybara-Preferences", "Judges", 1, 5, False),
        ("argilla-judge_lm", "Argilla judge LM", "argilla/distilabel-intel-orca-dpo-pairs", "Judges", 1, 10, False),
        ("code-complexity", "Code complexity", cuf, "Code", 1, 5, False),
        ("code-style", "Code style", cuf, "Code", 1, 5, False),
        ("code-explanation", "Code explanation", cuf, "Code", 1, 5, False),
        ("code-instruction-following", "Code instruction following", cuf, "Code", 1, 5, False),
        ("code-readability", "Code readability", cuf, "Code", 1, 5, False),
    ]
    return tuple(
        Objective(i, name, label, source, group, lo, hi, confirmed, boolean=name == "beavertails-is_safe")
        for i, (name, label, source, group, lo, hi, confirmed) in enumerate(rows)
    )


OBJECTIVES: tuple[Objective, ...] = _make()
NUM_OBJECTIVES = len(OBJECTIVES)
NAMES: tuple[str, ...] = tuple(o.name for o in OBJECTIVES)
LABELS: tuple[str, ...] = tuple(o.label for o in OBJECTIVES)
HELPSTEER: tuple[Objective, ...] = OBJECTIVES[:5]
"""The five HelpSteer objectives (helpfulness, correctness, coherence, complexity, verbosity), scale 0-4."""
VERBOSITY_INDEX = NAMES.index("helpsteer-verbosity")
