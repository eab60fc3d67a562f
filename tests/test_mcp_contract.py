"""What agents and scripts can rely on (issue #23): MCP tools answer JSON, compact and labelled; a refusal reaches an
API or MCP caller as plain text, stays escaped for the page, and is one line in the server log; the descriptions read
as written."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from gradio_client import Client

from armorm_ui.objectives import NAMES

from .conftest import CARD_PROMPT, CARD_RESPONSES
from .test_ui_api import mcp_session

TWO = CARD_RESPONSES[:2]


def test_every_tool_answers_json(app_url):
    short = "Gorgeous. Lovely."
    calls = {
        "score": {"conversation": CARD_PROMPT, "candidates": TWO},
        "attribute": {"conversation": CARD_PROMPT, "candidate": short},
        "attribute_tokens": {"conversation": CARD_PROMPT, "candidate": short, "method": "gradient_x_input", "steps": 1},
        "probe": {"conversation": CARD_PROMPT, "candidates": TWO, "candidate": "B", "probes": "emojis,bold"},
    }

    async def work(session):
        return {name: await session.call_tool(name, args) for name, args in calls.items()}

    for name, answer in mcp_session(app_url, work).items():
        assert not answer.isError, (name, answer.content)
        (block,) = answer.content
        assert isinstance(json.loads(block.text), dict), name  # JSON, not Python's repr of a dict


def test_score_over_mcp_is_compact_and_its_contributions_add_up(app_url):
    async def work(session):
        compact = await session.call_tool("score", {"conversation": CARD_PROMPT, "candidates": TWO})
        full = await session.call_tool("score", {"conversation": CARD_PROMPT, "candidates": TWO,
                                                 "include_transform_matrix": True})  # fmt: skip
        return compact.content[0].text, full.content[0].text

    text, with_matrix = mcp_session(app_url, work)
    assert len(text) < 1500, len(text)
    found = json.loads(text)
    assert "reward_transform_matrix" not in found and np.asarray(json.loads(with_matrix)["reward_transform_matrix"]) \
        .shape == (19, 19)  # fmt: skip
    assert list(found["contributions"]) == list(NAMES)  # labelled with the objectives' ids, in the model's order
    contributions = np.array(list(found["contributions"].values())).T  # (2, 19)
    scores = np.asarray(found["scores"])
    # every number has 4 significant digits: each is within 5e-4 of its own size of the exact value
    slack = 5e-4 * (np.abs(contributions).sum(axis=1) + np.abs(scores))
    assert (np.abs(contributions.sum(axis=1) - scores) <= slack).all(), (contributions.sum(axis=1), scores)
    api = Client(app_url, verbose=False).predict(CARD_PROMPT, TWO, api_name="/score")
    np.testing.assert_allclose(scores, api["scores"], rtol=5e-4)
    assert found["verdict"] == api["verdict"] and found["preferred"] == api["preferred"]
    assert found["demo_checkpoint"] is True and found["ranks"] == api["ranks"]


def server_log(app_url, tmp_path_factory):
    """The log file of the app that conftest's app_url started (it names its URL)."""
    port = app_url.rstrip("/").rsplit(":", 1)[1]
    for path in tmp_path_factory.getbasetemp().glob("app*/app.log"):
        if f"127.0.0.1:{port}" in path.read_text(errors="replace"):
            return path
    raise AssertionError(f"no app.log of {app_url} under {tmp_path_factory.getbasetemp()}")


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_refusal_reaches_api_and_mcp_callers_as_written_and_is_one_log_line(app_url, tmp_path_factory):
    log = server_log(app_url, tmp_path_factory)
    start = log.stat().st_size
    marker = f"bot{uuid.uuid4().hex[:8]}"
    conversation = [{"role": marker, "content": "hi"}]
    wanted = f"Message 1 has role '{marker}'; use one of system, user, assistant."
    with pytest.raises(Exception) as refused:
        Client(app_url, verbose=False).predict(conversation, ["a"], api_name="/score")
    assert str(refused.value) == wanted  # as written: quotes, not &#x27;

    async def work(session):
        return await session.call_tool("score", {"conversation": conversation, "candidates": ["a"]})

    answer = mcp_session(app_url, work)
    assert answer.isError and answer.content[0].text == wanted

    def new_lines():
        with open(log, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            return f.read().splitlines()

    wait_for(lambda: sum(marker in line for line in new_lines()) >= 2)
    lines = new_lines()
    assert [line for line in lines if marker in line] == [f"refused score (api): {wanted}",
                                                          f"refused score (mcp): {wanted}"]  # fmt: skip
    assert not any("Traceback" in line for line in lines), "\n".join(lines)


class FakeRequest:
    def __init__(self, headers: dict, path: str = "/gradio_api/queue/join"):
        from types import SimpleNamespace

        self.headers, self.url = headers, SimpleNamespace(path=path)


@pytest.mark.parametrize(
    "headers, path, escaped",
    [({"x-gradio-user": "app"}, "/gradio_api/queue/join", True),  # the page renders a pop-up's message as HTML
     ({}, "/gradio_api/queue/join", True),  # unknown: as safe as for the page
     ({"x-gradio-user": "api"}, "/gradio_api/queue/join", False),
     ({"x-gradio-user": "mcp"}, "/gradio_api/queue/join", False),
     ({}, "/gradio_api/call/v2/score", False)],  # curl on the HTTP API's call route
)  # fmt: skip
def test_a_refusal_is_escaped_only_where_it_may_be_rendered(headers, path, escaped, capsys):
    from gradio.context import LocalContext

    from armorm_ui.errors import InputError
    from armorm_ui.ui.handlers import refusal

    token = LocalContext.request.set(FakeRequest(headers, path))
    try:
        error = refusal(InputError("Message 1 has role '<b>x</b>'\nsecond line"), "score")
    finally:
        LocalContext.request.reset(token)
    plain = "Message 1 has role '<b>x</b>'\nsecond line"
    assert error.message == ("Message 1 has role &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;<br>second line" if escaped else plain)
    assert error.print_exception is False
    logged = capsys.readouterr().err.splitlines()
    assert len(logged) == 1 and logged[0].endswith("Message 1 has role '<b>x</b>' second line")


def test_the_descriptions_read_as_written():
    """Gradio reads a docstring line by line: every parameter's whole description and each result item, with no
    wrapped line cut off or joined with a stray comma."""
    import gradio as gr
    from gradio.utils import get_function_description

    from armorm_ui.ui import api

    with gr.Blocks() as demo:
        api.add_api(type("Scorer", (), {"is_demo": True})())
    fns = {fn.api_name: fn.fn for fn in demo.fns.values()}
    assert set(fns) == {"score", "attribute", "attribute_tokens", "probe"}
    _, params, returns = get_function_description(fns["attribute_tokens"])
    assert params["target"].endswith("(one objective's weight in the score, which depends on the conversation only).")
    assert params["method"].endswith('or "gradient_x_input" (one backward pass, cheaper, rougher).')
    assert params["conversation"].startswith("the user's prompt as text") and params["conversation"].endswith("turn.")
    for name, fn in fns.items():
        description, params, returns = get_function_description(fn)
        assert all(params.values()), (name, params)
        text = description + " ".join(returns)
        assert ";," not in text and ",," not in text and "  " not in text, name
    _, _, returns = get_function_description(fns["score"])
    assert returns[1].startswith("verdict: ") and any(r.startswith("contributions: per objective id") for r in returns)
