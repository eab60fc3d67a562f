"""RewardBench's own code (the installed rewardbench package, 0.1.4) for the tests to compare against."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest


def rewardbench_code():
    """RewardBench's constants and calculate_scores_per_section, loaded from the installed package's files without
    importing its package (which pulls in model zoos and fastchat)."""
    spec = importlib.util.find_spec("rewardbench")
    if spec is None:
        pytest.fail("rewardbench is not installed: pip install --no-deps -r requirements-dev-nodeps.txt")
    folder = spec.submodule_search_locations[0]
    stubs = {"fastchat": types.ModuleType("fastchat"), "fastchat.conversation": types.ModuleType("fc"),
             "rewardbench": types.ModuleType("rewardbench"), "rewardbench.models": types.ModuleType("rbm")}  # fmt: skip
    stubs["fastchat.conversation"].Conversation = object
    stubs["rewardbench.models"].REWARD_MODEL_CONFIG = {}
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        modules = {}
        for name in ("constants", "utils"):
            s = importlib.util.spec_from_file_location(f"rewardbench.{name}", f"{folder}/{name}.py")
            modules[name] = importlib.util.module_from_spec(s)
            s.loader.exec_module(modules[name])
    finally:
        for k, v in saved.items():
            sys.modules.pop(k, None) if v is None else sys.modules.__setitem__(k, v)
    return modules["constants"], modules["utils"]
