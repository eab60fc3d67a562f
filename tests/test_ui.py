"""The app as built by build_demo: its public endpoints, and that any argument gets a result or a message."""

from __future__ import annotations

from armorm_ui import ui
from armorm_ui.config import AppConfig


def test_demo_builds_with_every_public_event_named(scorer):
    demo = ui.build_demo(scorer, AppConfig.from_env())
    config = demo.get_config_file()
    named = [d.get("api_name") for d in config["dependencies"] if d.get("api_visibility", "public") == "public"]
    assert "score" in named and all(named)


def public_endpoints(demo) -> dict:
    """api_name -> (handler, number of inputs) for every event a program can call."""
    return {f.api_name: (f.fn, len(f.inputs)) for f in demo.fns.values()
            if f.fn is not None and f.api_name and f.api_visibility != "private"}  # fmt: skip


def test_the_page_form_is_not_an_api(scorer):
    demo = ui.build_demo(scorer, AppConfig.from_env())
    endpoints = public_endpoints(demo)
    visibility = {f.api_name: f.api_visibility for f in demo.fns.values() if f.api_name in endpoints}
    assert {name for name, v in visibility.items() if v == "public"} == {
        "score",
        "attribute",
        "attribute_tokens",
        "probe",
    }
    # the page's own batch and annotation calls: callable by name, not offered as API or MCP tools
    assert {name for name, v in visibility.items() if v == "undocumented"} == {
        "score_file", "annotate_open", "annotate_resume", "annotate_save", "annotate_agreement"}  # fmt: skip


def any_json(max_leaves=6):
    from hypothesis import strategies as st

    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    return st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                        max_leaves=max_leaves)  # fmt: skip


ROLES = ["user", "assistant", "system", "robot", None, 3]


def test_every_endpoint_takes_any_arguments(scorer, tmp_path):
    """Whatever a caller sends, of any type, each public endpoint answers with a result or a gr.Error."""
    import asyncio
    import inspect

    import gradio as gr
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    demo = ui.build_demo(scorer, AppConfig(data_dir=str(tmp_path / "data")))
    endpoints = public_endpoints(demo)
    good_file = tmp_path / "items.csv"
    good_file.write_text("prompt,response_1,response_2\nq,a,b\n", encoding="utf-8")
    message = st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.text(max_size=20) | any_json(2)})
    value = (any_json() | st.lists(message, max_size=3) | st.just(str(good_file)) | st.sampled_from(["A", "CSV", "ana"])
             | st.text(min_size=16, max_size=20))  # fmt: skip

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(sorted(endpoints)), data=st.data())
    def check(name, data):
        fn, n = endpoints[name]
        args = [data.draw(value) for _ in range(n)]
        try:
            out = fn(*args)
            if inspect.isawaitable(out):
                asyncio.run(out)
        except gr.Error as e:
            assert e.message
        # anything else (TypeError, KeyError, a Gradio internal) fails the test

    check()
