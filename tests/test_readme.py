"""The README's set-up commands are a contract: exactly two, and CI runs the test one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()]


def test_two_setup_commands_and_ci_runs_the_test_one():
    assert quick_start_commands() == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_make_targets_exist():
    out = subprocess.run(["make", "-n", "run", "test"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "app.py" in out.stdout and "pytest" in out.stdout


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--model", "--revision", "--device", "--dtype", "--max-tokens", "--data-dir", "--queue-size"):
        assert flag in out.stdout


def test_every_option_is_documented():
    from dataclasses import fields

    from armorm_ui.config import AppConfig

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for f in fields(AppConfig):
        assert f"`{f.metadata['env']}`" in text and f"`--{f.name.replace('_', '-')}`" in text, f.name
