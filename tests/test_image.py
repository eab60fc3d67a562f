"""The container image built for real with podman (base: Debian from its packages, scripts/build_image.sh), then
started from the image's file system as its user `app`: it serves the page, its health check's command passes, and
it writes its label database and the demo checkpoint into its own folders. (No container may be run here, so the
image's file system is entered with chroot, with the image's environment, working directory and command.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
TAG = "localhost/armorm-explorer:test"
pytestmark = pytest.mark.container


def run(*cmd, **kwargs) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs).stdout.strip()


@pytest.fixture(scope="module")
def image():
    if not (shutil.which("podman") and shutil.which("mmdebstrap")):
        pytest.fail("podman and mmdebstrap are needed: apt-get install podman mmdebstrap (make test does).")
    if os.geteuid() != 0:
        pytest.fail("building with --isolation chroot and entering the image with chroot need root")
    out = subprocess.run([ROOT / "scripts" / "build_image.sh", TAG], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(run("podman", "image", "inspect", TAG))[0]


def dockerfile_healthcheck() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's HEALTHCHECK: its options ({"start-period": "3600s", ...}) and its command (exec form)."""
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    value = next(i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK")
    options, command = re.split(r"\s+CMD\s+", value, maxsplit=1)
    return dict(option.removeprefix("--").split("=", 1) for option in options.split()), json.loads(command)


def test_the_image_keeps_its_health_check(image):
    """The OCI image format has no health check: podman builds OCI by default and drops HEALTHCHECK with a warning;
    build_image.sh builds Docker's format, which keeps it (podman-build(1), --format;
    https://github.com/containers/buildah/issues/2388)."""
    check = image.get("Healthcheck")
    assert check, f"the image has no health check: its manifest is {image['ManifestType']}"
    options, command = dockerfile_healthcheck()
    assert check["Test"] == ["CMD", *command]
    nanoseconds = {key: int(value.removesuffix("s")) * 10**9 for key, value in options.items()}
    assert nanoseconds["start-period"] == 3600 * 10**9  # the first start downloads about 16 GB
    assert (check["StartPeriod"], check["Interval"], check["Timeout"]) == (
        nanoseconds["start-period"], nanoseconds["interval"], nanoseconds["timeout"])  # fmt: skip


def test_the_image_serves_the_page_and_writes_as_its_user(image, tmp_path):
    config = image["Config"]
    assert config["User"] == "1000:1000" and config["Cmd"] == ["python", "app.py"]
    name = f"armorm-test-{os.getpid()}"
    run("podman", "create", "--name", name, TAG)
    rootfs = Path(run("podman", "mount", name))
    mounts = []
    proc = None
    try:
        (rootfs / "etc" / "hosts").touch()  # a container runtime provides these three; so does this test
        for sub, how in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"]),
                         ("etc/hosts", ["--bind", "/etc/hosts"])):  # fmt: skip
            run("mount", *how, str(rootfs / sub))
            mounts.append(rootfs / sub)
        port = free_port()
        env = dict(item.split("=", 1) for item in config["Env"])
        env.update(HOME="/home/app", GRADIO_SERVER_PORT=str(port), ARMORM_DEVICE="cpu", HF_HUB_OFFLINE="1")
        as_app = ["chroot", "--userspec=1000:1000", str(rootfs), "/usr/bin/env", "-i",
                  *[f"{k}={v}" for k, v in env.items()]]  # fmt: skip
        command = f"cd {config['WorkingDir']} && exec {' '.join(config['Cmd'])}"
        proc = subprocess.Popen([*as_app, "/bin/sh", "-c", command],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        deadline = time.time() + 300
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()[-3000:]
                assert time.time() < deadline, "the image's app did not serve the page in 300 s"
                time.sleep(1)
        assert "<html" in page.lower()
        # the health check's command, run as the runtime runs it (in the image, as its user), at this test's port
        test = image["Healthcheck"]["Test"]
        assert test[0] == "CMD" and "'http://127.0.0.1:7860/'" in test[-1]
        assert "GRADIO_SERVER_PORT=7860" in config["Env"]  # the port it checks is the one the app serves on
        health = [*test[1:-1], test[-1].replace(":7860/", f":{port}/")]
        check = subprocess.run([*as_app, *health], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr[-3000:]
        home = rootfs / "home" / "app"
        written = [home / "data" / "labels.sqlite", *(home / ".cache" / "armorm-ui").glob("demo-checkpoint-*/*.json")]
        assert len(written) > 2, written
        assert all(path.stat().st_uid == 1000 for path in written)  # written by app, in folders app owns
        assert (home / "armorm-explorer" / "app.py").stat().st_uid == 0  # the code itself stays read-only to it
        proc.terminate()
        proc.wait(timeout=30)
        check = subprocess.run([*as_app, *health], capture_output=True, text=True, timeout=30)
        assert check.returncode != 0  # and it fails once nothing answers
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        for path in reversed(mounts):
            subprocess.run(["umount", "-l", str(path)])
        subprocess.run(["podman", "umount", name], capture_output=True)
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
