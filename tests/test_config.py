"""AppConfig: environment variables and flags."""

from __future__ import annotations

import pytest

from armorm_ui.config import AppConfig


def test_config_env_and_flags():
    c = AppConfig.parse(["--max-tokens", "2048"], env={"ARMORM_MODEL": "/models/x", "GRADIO_SERVER_PORT": "9000"})
    assert (c.model, c.port, c.max_tokens) == ("/models/x", 9000, 2048)
    with pytest.raises(SystemExit):
        AppConfig.parse(["--max-tokens", "9000"], env={})
