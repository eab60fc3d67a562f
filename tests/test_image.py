"""The container image built for real with podman (base: Debian from its packages, scripts/build_image.sh), then
started from the image's file system as its user `app`: it serves the page and writes its label database and the
demo checkpoint into its own folders. (No container may be run here, so the image's file system is entered with
chroot, with the image's environment, working directory and command.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

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
    return json.loads(run("podman", "image", "inspect", TAG))[0]["Config"]


def test_the_image_serves_the_page_and_writes_as_its_user(image, tmp_path):
    assert image["User"] == "1000:1000" and image["Cmd"] == ["python", "app.py"]
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
        env = dict(item.split("=", 1) for item in image["Env"])
        env.update(HOME="/home/app", GRADIO_SERVER_PORT=str(port), ARMORM_DEVICE="cpu", HF_HUB_OFFLINE="1")
        command = f"cd {image['WorkingDir']} && exec {' '.join(image['Cmd'])}"
        proc = subprocess.Popen(["chroot", "--userspec=1000:1000", str(rootfs), "/usr/bin/env", "-i",
                                 *[f"{k}={v}" for k, v in env.items()], "/bin/sh", "-c", command],
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
        home = rootfs / "home" / "app"
        written = [home / "data" / "labels.sqlite", *(home / ".cache" / "armorm-ui").glob("demo-checkpoint-*/*.json")]
        assert len(written) > 2, written
        assert all(path.stat().st_uid == 1000 for path in written)  # written by app, in folders app owns
        assert (home / "armorm-explorer" / "app.py").stat().st_uid == 0  # the code itself stays read-only to it
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        for path in reversed(mounts):
            subprocess.run(["umount", "-l", str(path)])
        subprocess.run(["podman", "umount", name], capture_output=True)
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
