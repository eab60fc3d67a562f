"""Shared fixtures: one demo checkpoint (tiny random backbone, real layout) and one fp32 CPU scorer per session."""

from __future__ import annotations

import pytest

from armorm_ui import demo_checkpoint

CARD_PROMPT = 'What are some synonyms for the word "beautiful"?'
CARD_RESPONSES = [
    "Nicely, Beautifully, Handsome, Stunning, Wonderful, Gorgeous, Pretty, Stunning, Elegant",
    'Certainly! Here are some synonyms for the word "beautiful":\n\n1. Gorgeous\n2. Lovely\n3. Stunning\n'
    "4. Attractive\n5. Pretty\n6. Elegant\n7. Exquisite\n8. Handsome\n9. Charming\n10. Alluring\n11. Radiant\n"
    "12. Magnificent\n13. Graceful\n14. Enchanting\n15. Dazzling\n\n"
    "These synonyms can be used in various contexts to convey the idea of beauty.",
    "Sorry i cannot answer this.",
]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return demo_checkpoint.build(tmp_path_factory.mktemp("demo") / "checkpoint")


@pytest.fixture(scope="session")
def scorer(demo_dir):
    from armorm_ui import load_scorer

    return load_scorer(str(demo_dir), device="cpu")


@pytest.fixture(scope="session")
def tokenizer(demo_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_dir)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache or data folders."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ARMORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
