"""AppConfig: environment variables and flags."""

from __future__ import annotations

import pytest

from armorm_ui.config import AppConfig


def test_config_env_and_flags():
    c = AppConfig.parse(["--max-tokens", "2048"], env={"ARMORM_MODEL": "/models/x", "GRADIO_SERVER_PORT": "9000"})
    assert (c.model, c.port, c.max_tokens) == ("/models/x", 9000, 2048)
    with pytest.raises(SystemExit):
        AppConfig.parse(["--max-tokens", "9000"], env={})


def test_the_probe_tabs_row_cap():
    assert AppConfig.from_env(env={}).probe_rows == 200
    c = AppConfig.parse(["--probe-rows", "50"], env={"ARMORM_PROBE_ROWS": "10"})
    assert c.probe_rows == 50 and AppConfig.from_env(env={"ARMORM_PROBE_ROWS": "10"}).probe_rows == 10
    with pytest.raises(SystemExit, match="probe_rows must be positive"):
        AppConfig.parse(["--probe-rows", "0"], env={})
