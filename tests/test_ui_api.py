"""The programmatic ways in: /score and /attribute over HTTP (gradio_client) and as MCP tools (the `mcp` package's
client against the launched app); the page's batch and annotation calls are offered as neither."""

from __future__ import annotations

import asyncio
import json

import numpy as np
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
        return tools, scored, explained

    tools, scored, explained = mcp_session(app_url, work)
    assert set(tools) == {"score", "attribute"}  # no batch, annotation or page events
    schema = tools["score"].inputSchema["properties"]
    assert schema["candidates"]["type"] == "array" and "user's turn" in schema["conversation"]["description"]
    assert "preference score" in tools["score"].description and "demo" in tools["score"].description
    assert not scored.isError and not explained.isError
    text = scored.content[0].text
    api = Client(app_url, verbose=False).predict(CARD, CARD_RESPONSES, api_name="/score")
    found = json.loads(text) if text.lstrip().startswith('{"') else __import__("ast").literal_eval(text)
    np.testing.assert_allclose(found["scores"], api["scores"], atol=1e-9)
    assert "segments" in explained.content[0].text


def test_the_api_page_lists_only_score_and_attribute(app_url):
    info = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {"/score", "/attribute"}
