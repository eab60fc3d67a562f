"""The launched app, through gradio_client, as API users reach it."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

from armorm_ui import load_scorer

from .conftest import CARD_PROMPT, CARD_RESPONSES


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_score_endpoint_matches_the_library(client, demo_dir):
    conversation = [{"role": "user", "content": CARD_PROMPT}]
    out = client.predict(conversation, CARD_RESPONSES, api_name="/score")
    direct = load_scorer(str(demo_dir), device="cpu").score(conversation, CARD_RESPONSES)
    np.testing.assert_allclose(out["scores"], direct.scores, atol=1e-6)
    assert np.asarray(out["rewards"]).shape == (3, 19)
    assert len(out["gating_output"]) == 19 and len(out["coefficients"]) == 19
    assert out["objectives"][0] == "helpsteer-helpfulness" and out["demo_checkpoint"] is True
    assert sorted(out["ranks"]) == [1, 2, 3]


def test_score_endpoint_is_typed(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/score"]
    names = [p["parameter_name"] for p in info["parameters"]]
    assert names == ["conversation", "candidates"]
    assert info["parameters"][1]["type"] == {"type": "array", "items": {"type": "string"}}


def test_bad_input_gets_a_clear_message(client):
    with pytest.raises(Exception, match="must end with a user turn"):
        client.predict([{"role": "assistant", "content": "x"}], ["a"], api_name="/score")
    with pytest.raises(Exception, match="17 candidates; the limit is 16"):
        client.predict([{"role": "user", "content": "x"}], ["a"] * 17, api_name="/score")


def test_batch_file_endpoint(client, tmp_path, demo_dir):
    import pandas as pd
    from gradio_client import handle_file

    src = tmp_path / "items.csv"
    pd.DataFrame([{"prompt": CARD_PROMPT, "response_1": CARD_RESPONSES[0], "response_2": CARD_RESPONSES[2]}]).to_csv(
        src, index=False
    )
    summary, out = client.predict(handle_file(str(src)), "CSV", api_name="/score_file")
    assert "1 items" in summary
    scores = pd.read_csv(out if isinstance(out, str) else out["value"])["score"].to_numpy()
    direct = load_scorer(str(demo_dir), device="cpu").score(
        [{"role": "user", "content": CARD_PROMPT}], [CARD_RESPONSES[0], CARD_RESPONSES[2]]
    )
    np.testing.assert_allclose(scores, direct.scores, atol=1e-6)
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,response_1\nq,\n", encoding="utf-8")
    with pytest.raises(Exception, match="line 2: no responses"):
        client.predict(handle_file(str(bad)), "CSV", api_name="/score_file")


def test_attribute_endpoint(client, demo_dir):
    from armorm_ui.attribution import attribute

    out = client.predict([{"role": "user", "content": CARD_PROMPT}], CARD_RESPONSES[1], api_name="/attribute")
    direct = attribute(load_scorer(str(demo_dir), device="cpu"), [{"role": "user", "content": CARD_PROMPT}],
                       CARD_RESPONSES[1])  # fmt: skip
    assert out["segments"] == direct.segments
    np.testing.assert_allclose(out["effects"], direct.effects, atol=1e-6)
