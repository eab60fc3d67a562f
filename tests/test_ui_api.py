"""The programmatic ways in: /score, /attribute and /attribute_tokens over HTTP (gradio_client) and as MCP tools
(the `mcp` package's client against the launched app); the page's batch and annotation calls are offered as
neither."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from gradio_client import Client

from .conftest import CARD_PROMPT, CARD_RESPONSES

CARD = [{"role": "user", "content": CARD_PROMPT}]


def mcp_session(app_url, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with streamable_http_client(app_url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    return asyncio.run(run())


def test_mcp_offers_exactly_the_scoring_tools_with_the_api_scores(app_url):
    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        scored = await session.call_tool("score", {"conversation": CARD, "candidates": CARD_RESPONSES})
        explained = await session.call_tool("attribute", {"conversation": CARD, "candidate": CARD_RESPONSES[1]})
        words = await session.call_tool("attribute_tokens", {"conversation": CARD, "candidate": CARD_RESPONSES[1],
                                                             "target": "reward", "objective": "helpsteer-verbosity",
                                                             "method": "gradient_x_input"})  # fmt: skip
        return tools, scored, explained, words

    tools, scored, explained, words = mcp_session(app_url, work)
    assert set(tools) == {"score", "attribute", "attribute_tokens"}  # no batch, annotation or page events
    schema = tools["score"].inputSchema["properties"]
    assert schema["candidates"]["type"] == "array" and "user's turn" in schema["conversation"]["description"]
    assert "preference score" in tools["score"].description and "demo" in tools["score"].description
    assert not scored.isError and not explained.isError
    text = scored.content[0].text
    api = Client(app_url, verbose=False).predict(CARD, CARD_RESPONSES, api_name="/score")
    found = json.loads(text) if text.lstrip().startswith('{"') else __import__("ast").literal_eval(text)
    np.testing.assert_allclose(found["scores"], api["scores"], atol=1e-9)
    assert "segments" in explained.content[0].text
    assert not words.isError and "Verbosity reward" in words.content[0].text
    assert "coefficient" in tools["attribute_tokens"].inputSchema["properties"]["target"]["description"]


def test_attribute_tokens_over_http_equals_the_library(app_url, scorer):
    from armorm_ui.token_attribution import explain_tokens, parse_target

    client = Client(app_url, verbose=False)
    out = client.predict(CARD, CARD_RESPONSES[1], "score", "", "integrated_gradients", 8, api_name="/attribute_tokens")
    direct = explain_tokens(scorer, CARD, CARD_RESPONSES[1], parse_target("score"), "integrated_gradients", 8)
    assert [w["text"] for w in out["words"]] == CARD_RESPONSES[1].split()
    np.testing.assert_allclose([w["attribution"] for w in out["words"]], [w.attribution for w in direct.words],
                               atol=1e-6)  # fmt: skip
    assert out["completeness_gap"] == pytest.approx(direct.completeness_gap, abs=1e-4)
    gate = client.predict(CARD, CARD_RESPONSES[0], "coefficient", "Safe", "gradient_x_input", 1,
                          api_name="/attribute_tokens")  # fmt: skip
    assert gate["explains"] == "conversation" and {w["message"] for w in gate["words"]} == {0}
    with pytest.raises(Exception, match="needs an objective"):
        client.predict(CARD, CARD_RESPONSES[0], "reward", "", "gradient_x_input", 1, api_name="/attribute_tokens")


def test_the_api_page_lists_only_the_scoring_calls(app_url):
    info = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {"/score", "/attribute", "/attribute_tokens"}
