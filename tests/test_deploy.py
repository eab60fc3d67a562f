"""Deployments from this repository: the container's start command, the Space's front matter, ZeroGPU routing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from armorm_ui.config import REAL_MODEL, AppConfig

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dockerfile():
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def instructions(df, name):
    return [i["value"] for i in df.structure if i["instruction"] == name]


def test_every_copied_file_exists(dockerfile):
    copies = instructions(dockerfile, "COPY")
    assert copies
    for value in copies:
        *sources, _dest = value.split()
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"


def test_container_settings(dockerfile):
    env = dockerfile.envs
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    users = instructions(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")
    assert instructions(dockerfile, "EXPOSE") == ["7860"]
    assert instructions(dockerfile, "HEALTHCHECK") and instructions(dockerfile, "VOLUME")
    # what the app writes lives in volumes under the app user's home, made and owned by that user in the image
    volumes = json.loads(instructions(dockerfile, "VOLUME")[-1])
    assert set(volumes) == {"/home/app/.cache", "/home/app/data"} and env["ARMORM_DATA_DIR"] == "/home/app/data"
    run = " ".join(instructions(dockerfile, "RUN"))
    assert "useradd --create-home --uid 1000 app" in run and "chown -R app:app /home/app" in run
    assert "--start-period=3600s" in instructions(dockerfile, "HEALTHCHECK")[-1]  # the first 16 GB download


def test_the_build_context_holds_only_what_the_image_copies(dockerfile):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is left out, then only what COPY names is let in
    copied = {src.rstrip("/") for value in instructions(dockerfile, "COPY") for src in value.split()[:-1]}
    assert {line[1:].rstrip("/") for line in ignore if line.startswith("!")} == copied


def test_start_command_serves_the_page(dockerfile, demo_dir, tmp_path):
    """The Dockerfile's CMD, run here from a folder holding only what the Dockerfile copies, with its ENV."""
    app_dir = tmp_path / "image"
    app_dir.mkdir()
    for value in instructions(dockerfile, "COPY"):
        *sources, dest = value.split()
        for src in sources:
            target = app_dir / (Path(src).name if dest.endswith("/") or dest == "./" else dest)
            (shutil.copytree if (ROOT / src).is_dir() else shutil.copy)(ROOT / src, target)
    cmd = json.loads(instructions(dockerfile, "CMD")[-1])
    port = free_port()
    image_env = {k: v for k, v in dockerfile.envs.items() if k != "PATH"}  # the image's venv is this interpreter
    env = {**os.environ, **image_env, "GRADIO_SERVER_PORT": str(port), "ARMORM_MODEL": str(demo_dir),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "ARMORM_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    cmd = [sys.executable if c == "python" else c for c in cmd]
    proc = subprocess.Popen(cmd, cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "the container's start command did not serve the page in 120 s"
                time.sleep(0.5)
        assert "<html" in page.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_space_front_matter():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Spaces front matter"
    meta = yaml.safe_load(match.group(1))
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pins["gradio"]
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    # ZeroGPU offers Python 3.10 and 3.12; the pins (numpy, pandas) need 3.11 or later, as pyproject.toml says
    assert str(meta["python_version"]) == "3.12"
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
    assert REAL_MODEL in meta["models"]
    assert [entry.split()[0] for entry in meta["preload_from_hub"]] == [REAL_MODEL]  # in the image: fast restarts
    assert meta["license"] and meta["suggested_hardware"] and meta["startup_duration_timeout"]


def test_space_defaults_to_the_real_model():
    assert AppConfig.from_env({"SPACE_ID": "someone/armorm"}).model == REAL_MODEL
    assert AppConfig.from_env({"SPACE_ID": "x/y", "ARMORM_MODEL": "/models/a"}).model == "/models/a"
    assert AppConfig.from_env({}).model == ""
