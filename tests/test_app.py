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
    assert names == ["conversation", "candidates", "include_transform_matrix"]
    assert info["parameters"][1]["type"]["items"] == {"type": "string"}


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


def test_a_wide_header_does_not_hold_the_model(client, tmp_path):
    """The 7.9 MB one-line file: refused with a message, and the model is free for the next call right after."""
    from gradio_client import handle_file

    wide = tmp_path / "wide.csv"
    wide.write_text("prompt," + ",".join(f"c{i}" for i in range(1, 1_000_000)) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="1,000,000 columns; at most 21 are read"):
        client.predict(handle_file(str(wide)), "CSV", api_name="/score_file")
    out = client.predict([{"role": "user", "content": "hi"}], ["hello", "bye"], api_name="/score")
    assert len(out["scores"]) == 2


def test_attribute_refusals_are_clear(client):
    user = [{"role": "user", "content": "Say something."}]
    with pytest.raises(Exception, match="must be text, got int"):
        client.predict(user, 42, api_name="/attribute")
    many = " ".join(f"Point {i}." for i in range(700))  # a long answer of short sentences (within 4,096 tokens)
    out = client.predict(user, many, api_name="/attribute")
    assert len(out["segments"]) <= 48 and "".join(out["segments"]) == many


def test_the_page_form_cannot_be_called_as_an_api(client):
    assert "/score_form" not in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    with pytest.raises(Exception):  # noqa: B017 - any refusal: the endpoint does not exist
        client.predict("", [], "q", 2, api_name="/score_form")
