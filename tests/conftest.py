"""Shared fixtures: one demo checkpoint (tiny random backbone, real layout) and one fp32 CPU scorer per session."""

from __future__ import annotations

import pytest

from armorm_ui.backend import demo_checkpoint

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


@pytest.fixture
def fake_scorer():
    """A Scorer on the fake backend and tokenizer (tests/fakes.py): known outputs, no torch; a fresh one per test
    (its cache, peak concurrency and the backend's recorded calls start empty)."""
    from armorm_ui.scoring import Scorer, ScorerConfig

    from .fakes import FakeBackend, FakeTokenizer

    return Scorer(FakeBackend(), FakeTokenizer(), ScorerConfig())


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache or data folders."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ARMORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP_LOGS: list = []
"""The launched app's log, whose end a failed test's report shows (with the browser's console, where it used one)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed and call.when == "call":
        browser = item.funcargs.get("browser")
        if browser is not None and getattr(browser, "said", None):
            report.sections.append(("the browser's console and failed requests", "\n".join(browser.said)))
        if "app_url" in item.fixturenames and APP_LOGS and APP_LOGS[-1].exists():
            tail = APP_LOGS[-1].read_text(errors="replace").splitlines()[-60:]
            report.sections.append(("the app's log (its end)", "\n".join(tail)))


@pytest.fixture(scope="session")
def app_url(demo_dir, tmp_path_factory):
    """The real app.py, started as a user would, on the demo checkpoint; stopped after the session."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "ARMORM_MODEL": str(demo_dir), "GRADIO_SERVER_PORT": str(port), "ARMORM_DEVICE": "cpu",
           "ARMORM_DATA_DIR": str(log.parent / "data"), "GRADIO_MCP_SERVER": "true"}  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"app did not start:\n{log.read_text()}") from None
            time.sleep(0.5)
    APP_LOGS.append(log)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server from Debian's packages, started for this test session in a folder of its own (unix
    socket only) and stopped after it; yields a function that makes a fresh database and returns its URL."""
    import os
    import shutil
    import subprocess
    import tempfile
    import uuid
    from pathlib import Path

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("PostgreSQL not found: install it (apt-get install postgresql) or run `make test`.")
    bindir = found[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="armorm-pg-"))
    as_owner = []
    if os.geteuid() == 0:  # the server refuses to run as root: it runs as the package's postgres user
        as_owner = ["runuser", "-u", "postgres", "--"]
        folder.chmod(0o755)
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    subprocess.run([*as_owner, bindir / "initdb", "-D", data, "-U", "armorm", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses='' -c fsync=on"
    subprocess.run([*as_owner, bindir / "pg_ctl", "-D", data, "-l", folder / "log", "-o", options, "-w", "start"],
                   check=True, capture_output=True)  # fmt: skip
    base = f"postgresql+psycopg://armorm@/{{}}?host={folder}&port={port}"

    def fresh_database() -> str:
        import sqlalchemy as sa

        name = "t" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(base.format("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as db:
            db.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return base.format(name)

    yield fresh_database
    subprocess.run([*as_owner, bindir / "pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def labels_url(request, tmp_path):
    """Each label-store test runs on both databases: the embedded SQLite file and a PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.sqlite'}"
    return request.getfixturevalue("postgres")()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (one per test module)."""
    from pathlib import Path

    from .browser import CHROMIUM, FLAGS, PatientBrowser

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or run `make test`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield PatientBrowser(b)
        b.close()
