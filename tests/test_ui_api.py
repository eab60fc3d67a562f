"""The programmatic ways in: /score, /attribute, /attribute_tokens and /probe over HTTP (gradio_client) and as MCP tools
(the `mcp` package's client against the launched app); the page's batch and annotation calls are offered as
neither."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from gradio_client import Client

from armorm_ui.probes import PROBES

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
        probed = await session.call_tool("probe", {"conversation": CARD, "candidates": CARD_RESPONSES,
                                                   "candidate": "C", "probes": "emojis,apology"})  # fmt: skip
        return tools, scored, explained, words, probed

    tools, scored, explained, words, probed = mcp_session(app_url, work)
    assert set(tools) == {"score", "attribute", "attribute_tokens", "probe"}  # no batch, annotation or page events
    schema = tools["score"].inputSchema["properties"]
    assert schema["candidates"]["type"] == "array" and "user's turn" in schema["conversation"]["description"]
    assert "preference score" in tools["score"].description and "demo" in tools["score"].description
    assert not scored.isError and not explained.isError
    api = Client(app_url, verbose=False).predict(CARD, CARD_RESPONSES, api_name="/score")
    found = json.loads(scored.content[0].text)
    np.testing.assert_allclose(found["scores"], api["scores"], rtol=5e-4)  # 4 significant digits over MCP
    assert found["ranks"] == api["ranks"] and found["verdict"] == api["verdict"]
    assert "contributions" in tools["score"].description and "preferred_probability" in tools["probe"].description
    assert "segments" in json.loads(explained.content[0].text)
    assert not words.isError and json.loads(words.content[0].text)["target"] == "Verbosity reward"
    assert "coefficient" in tools["attribute_tokens"].inputSchema["properties"]["target"]["description"]
    assert not probed.isError and "already opens with an apology" in probed.content[0].text
    assert all(p.name in tools["probe"].description for p in PROBES)  # it names every probe it offers
    assert "weight_part" in tools["probe"].description and "demo" in tools["probe"].description
    assert "comma" in tools["probe"].inputSchema["properties"]["probes"]["description"]


def test_score_gives_the_preference_probabilities_of_its_scores(app_url):
    out = Client(app_url, verbose=False).predict(CARD, CARD_RESPONSES, api_name="/score")
    s, P = np.asarray(out["scores"]), np.asarray(out["probabilities"])
    assert P.shape == (len(CARD_RESPONSES), len(CARD_RESPONSES))
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-(s[:, None] - s[None, :]))), rtol=1e-12)  # sigmoid(s_i - s_j)
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-15)  # antisymmetric: P(i over j) + P(j over i) = 1
    np.testing.assert_array_equal(np.diag(P), 0.5)
    first, second = np.argsort(-s, kind="stable")[:2]
    assert out["preferred_probability"] == pytest.approx(P[first, second]) and out["preferred_probability"] >= 0.5
    assert [out["ranks"][k] for k in (first, second)] == [1, 2]
    one = Client(app_url, verbose=False).predict(CARD, CARD_RESPONSES[:1], api_name="/score")
    assert one["probabilities"] == [[0.5]] and one["preferred_probability"] is None


def test_score_probabilities_helper():
    from armorm_ui.ui.api import probe_probabilities, score_probabilities

    got = score_probabilities(np.array([0.0, 2.0, 2.0]))
    assert got["preferred_probability"] == 0.5  # a tie for first place: B over C
    assert got["probabilities"][1][0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    found = {"probes": [{"probe": "bold", "skipped": None, "delta": -1.0}, {"probe": "emojis", "skipped": "none"},
                        {"probe": "brevity_system", "skipped": None, "delta": 0.3}]}  # fmt: skip
    sides = {"bold": "answer", "emojis": "answer", "brevity_system": "conversation"}
    bold, emojis, brevity = probe_probabilities(found, sides)["probes"]
    assert bold["preferred_probability"] == pytest.approx(1 / (1 + np.e))
    assert "preferred_probability" not in emojis and brevity["preferred_probability"] is None


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
    assert set(info["named_endpoints"]) == {"/score", "/attribute", "/attribute_tokens", "/probe"}


def test_probe_over_http_equals_the_library(app_url, scorer):
    from armorm_ui.probing import probe_answer

    client = Client(app_url, verbose=False)
    out = client.predict(CARD, CARD_RESPONSES, "B", "all", api_name="/probe")
    direct = probe_answer(scorer, CARD, CARD_RESPONSES, 1)
    assert out["candidate"] == "B" and out["demo_checkpoint"] is True and len(out["objectives"]) == 19
    assert out["score"] == pytest.approx(float(direct.base.scores[1]), abs=1e-6)
    assert [p["probe"] for p in out["probes"]] == [o.probe.name for o in direct.outcomes]
    assert [p["skipped"] for p in out["probes"]] == [o.skipped for o in direct.outcomes]
    assert direct.applied and direct.skipped
    for got, o in zip(out["probes"], direct.outcomes):
        if o.applied:
            assert got["delta"] == pytest.approx(o.delta, abs=1e-6)
            np.testing.assert_allclose(got["reward_part"], o.reward_part, atol=1e-6)
            np.testing.assert_allclose(got["weight_part"], o.weight_part, atol=1e-6)
            assert (got["rank_before"], got["rank_after"]) == (o.rank_before, o.rank_after)
            assert got["edited"] == (o.answer if o.probe.side == "answer" else o.messages)
            if o.probe.side == "answer":  # P(the edited response is preferred to the original) = sigmoid(delta)
                assert got["preferred_probability"] == pytest.approx(1 / (1 + np.exp(-o.delta)), abs=1e-6)
            else:
                assert got["preferred_probability"] is None
    some = client.predict(CARD, CARD_RESPONSES, "b", " emojis, bold ", api_name="/probe")  # any case, any spaces
    assert [p["probe"] for p in some["probes"]] == ["bold", "emojis"]


def test_probe_refuses_a_bad_letter_or_probe_name_clearly(app_url):
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="Candidate D does not exist: there are 3 candidates \\(A to C\\)"):
        client.predict(CARD, CARD_RESPONSES, "D", "all", api_name="/probe")
    with pytest.raises(
        Exception,
        match="candidate must be a letter such as A \\(the first candidate\\) or B \\(the second\\); got 1\\.",
    ):
        client.predict(CARD, CARD_RESPONSES, "1", "all", api_name="/probe")
    with pytest.raises(Exception, match="no probe is named sparkles, glitter; choose all, or from bold, bullets"):
        client.predict(CARD, CARD_RESPONSES, "A", "bold,sparkles, glitter", api_name="/probe")
    with pytest.raises(Exception, match="names no probe"):
        client.predict(CARD, CARD_RESPONSES, "A", " , ", api_name="/probe")


def test_view_api_names_types_and_describes_each_result_field(app_url):
    """Each endpoint's result is one named value whose fields view_api() and the API page list with their types and
    what they mean; each parameter has its name, its description and an example (not "1st", "Any" or "...")."""
    client = Client(app_url, verbose=False)
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    (result,) = info["/score"]["returns"]
    assert result["label"] == "result"
    fields = result["type"]["properties"]
    kinds = {"scores": "array", "ranks": "array", "preferred": "string", "verdict": "string", "contributions": "object",
             "rewards": "array", "demo_checkpoint": "boolean"}  # fmt: skip
    for name, kind in kinds.items():
        assert fields[name]["type"] == kind and len(fields[name]["description"]) > 15, name
    assert fields["contributions"]["additionalProperties"] == {"type": "array", "items": {"type": "number"}}
    shown = result["python_type"]["type"]
    assert shown.startswith("dict(objectives: list[str] (") and "scores: list[float] (one preference score" in shown
    wanted_fields = {"/attribute": "effects", "/attribute_tokens": "completeness_gap", "/probe": "probes"}
    for endpoint, wanted in wanted_fields.items():
        (out,) = info[endpoint]["returns"]
        assert out["label"] == "result" and "description" in out["type"]["properties"][wanted], endpoint
    assert "delta" in info["/probe"]["returns"][0]["type"]["properties"]["probes"]["items"]["properties"]
    conversation, candidates, matrix = info["/score"]["parameters"]
    assert [p["label"] for p in (conversation, candidates, matrix)] == ["conversation", "candidates",
                                                                        "include_transform_matrix"]  # fmt: skip
    assert "user's turn" in conversation["python_type"]["description"] and conversation["python_type"]["type"] == \
        "list[dict(str, Any)] | str"  # fmt: skip
    assert conversation["example_input"][0]["role"] == "user" and len(candidates["example_input"]) == 2
    assert matrix["parameter_has_default"] and matrix["parameter_default"] is False
    printed = client.view_api(print_info=False, return_format="str")
    assert "-> result" in printed and "1st" not in printed and ": Any" not in printed


def test_a_plain_string_is_a_one_turn_conversation_everywhere(app_url):
    client = Client(app_url, verbose=False)
    text = client.predict(CARD_PROMPT, CARD_RESPONSES[:2], api_name="/score")
    assert text["scores"] == client.predict(CARD, CARD_RESPONSES[:2], api_name="/score")["scores"]
    short = "Gorgeous. Lovely."
    assert client.predict(CARD_PROMPT, short, api_name="/attribute")["effects"] == \
        client.predict(CARD, short, api_name="/attribute")["effects"]  # fmt: skip
    words = client.predict(CARD_PROMPT, short, "score", "", "gradient_x_input", 1, api_name="/attribute_tokens")
    assert [w["text"] for w in words["words"]] == ["Gorgeous.", "Lovely."]
    probed = client.predict(CARD_PROMPT, [short, "Sorry."], "A", "emojis", api_name="/probe")
    assert probed["probes"][0]["skipped"] is None
    with pytest.raises(Exception, match="The prompt is empty or holds only spaces"):
        client.predict("  ", ["a"], api_name="/score")


def test_score_labels_each_contribution_and_gives_the_verdict(app_url):
    from armorm_ui.objectives import NAMES

    client = Client(app_url, verbose=False)
    out = client.predict(CARD, CARD_RESPONSES, api_name="/score")
    assert list(out["contributions"]) == list(NAMES) == out["objectives"]
    contributions = np.array([out["contributions"][name] for name in NAMES]).T  # (N, 19)
    np.testing.assert_allclose(contributions, np.asarray(out["rewards"]) * np.asarray(out["coefficients"]), atol=1e-12)
    np.testing.assert_allclose(contributions.sum(axis=1), out["scores"], atol=1e-9)  # they add up to the score
    winner = out["ranks"].index(1)
    assert out["preferred"] == "ABC"[winner] and out["verdict"].startswith(f"{out['preferred']} beats ")
    assert "**" not in out["verdict"] and out["reward_transform_matrix"] is None  # plain text; the matrix if asked
    full = client.predict(CARD, CARD_RESPONSES, True, api_name="/score")
    T = np.asarray(full["reward_transform_matrix"])
    assert T.shape == (19, 19)
    np.testing.assert_allclose(np.asarray(full["gating_output"]) @ T.T, full["coefficients"], atol=1e-6)
    with pytest.raises(Exception, match="include_transform_matrix must be true or false, got str"):
        client.predict(CARD, CARD_RESPONSES, "yes", api_name="/score")


def test_the_pages_own_handlers_are_not_callable_as_api(app_url):
    """The page's handlers (api_visibility="private") are neither listed nor callable through gradio_client, by name
    or by index, and the HTTP API's info lists only the four scoring calls."""
    import urllib.error
    import urllib.request

    client = Client(app_url, verbose=False)
    private = [(i, d["api_name"]) for i, d in enumerate(client.config["dependencies"])
               if d.get("api_visibility") == "private" and d.get("backend_fn")]  # fmt: skip
    assert len(private) > 10 and any(name == "score_form" for _, name in private)
    for index, name in private:
        with pytest.raises(ValueError, match="Invalid function index|Cannot find a function"):
            client.predict(fn_index=index)
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=f"/{name}")
    with urllib.request.urlopen(app_url + "gradio_api/info?all_endpoints=true", timeout=30) as r:
        listed = json.loads(r.read())["named_endpoints"]
    assert not {f"/{name}" for _, name in private} & set(listed)
    # nor by raw HTTP on Gradio's named routes (which would otherwise run any handler by name)
    for route in ("call", "call/v2", "run", "api"):
        request = urllib.request.Request(f"{app_url}gradio_api/{route}/score_form", data=b'{"data": []}',
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 404 and "no API endpoint named score_form" in refused.value.read().decode()
    ok = urllib.request.Request(f"{app_url}gradio_api/call/score", headers={"Content-Type": "application/json"},
                                data=json.dumps({"data": ["Hi", ["a", "b"], False]}).encode())  # fmt: skip
    with urllib.request.urlopen(ok, timeout=30) as r:  # the API itself still answers there
        assert "event_id" in json.loads(r.read())
