"""The Annotate and Evaluate tabs end to end in headless Chromium: label and download; evaluate a file and open a
wrong decision in Compare."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .browser import ARTIFACTS, CLIPPED_JS, open_app, plot_data

pytestmark = pytest.mark.browser


def made_key(page) -> str:
    """Press 'New project' and wait for the key the server made to appear in the box (keys are never chosen)."""
    page.click("#new-project")
    box = "#project-key input, #project-key textarea"
    page.wait_for_function(f"() => (document.querySelector({box!r}) || {{}}).value?.length >= 22", timeout=30_000)
    return page.input_value(box)


def test_annotation_flow(browser, app_url, tmp_path):
    """Label three items; everything a user typed or uploaded (responses, item ids, names, file contents quoted in a
    refusal) is shown as text: no markup renders, no script runs, and no image is fetched."""

    xss = '<img src=x onerror="window.__xss = 1"> **not bold**'
    img = "<img src=/pwned-{}.png>"
    rows = [{"item_id": f"q{i}" + (img.format("id") if i == 0 else ""), "prompt": f"Question {i}?",
             "response_1": f"Answer {i}.", "response_2": xss} for i in range(4)]  # fmt: skip
    items = tmp_path / "items.csv"
    pd.DataFrame(rows).to_csv(items, index=False)
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"item_id": img.format("dup"), "prompt": "q", "response_1": "a"}] * 2).to_csv(bad, index=False)
    name = "ana " + img.format("name")
    page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "pwned" in r.url else None)
    open_app(page, app_url)
    page.get_by_role("tab", name="Annotate").click()
    made_key(page)
    page.fill("#annotator input, #annotator textarea", name)
    page.fill("#passcode input", "browser-passcode")
    page.set_input_files("#annotate-upload input[type=file]", str(bad))  # refused: its message quotes the id
    page.wait_for_selector("text=already used on line 2")
    assert "<img src=/pwned-dup.png>" in page.inner_text("body")
    page.click("#annotate-upload button[aria-label=Clear]")
    page.set_input_files("#annotate-upload input[type=file]", str(items))
    page.wait_for_selector("#annotate-status:has-text('Item 1 of 4')")
    status = page.inner_text("#annotate-status")
    assert "q0<img src=/pwned-id.png>" in status and "<img src=/pwned-name.png>" in status, status
    # response text is shown literally, never rendered or executed
    assert page.input_value("#annotate-B textarea") == xss
    assert page.evaluate("window.__xss") is None
    for i, pick in enumerate(["A", "B", "A"]):
        page.locator("#annotate-choice").get_by_label(pick, exact=True).check()
        page.click("#annotate-save")
        page.wait_for_selector(f"#annotate-status:has-text('Item {i + 2} of 4')")
    page.get_by_text("Agreement with the model, and export").click()
    page.click("#agreement-button")
    page.wait_for_selector("#plot-agreement .js-plotly-plot .main-svg")
    assert name in page.inner_text("#agreement-text")
    with page.expect_download() as download:
        page.click("#labels-csv")
    labels = pd.read_csv(download.value.path())
    assert labels["item_id"].tolist() == ["q0<img src=/pwned-id.png>", "q1", "q2"]
    assert labels["choice"].tolist() == ["A", "B", "A"] and set(labels["annotator"]) == {name}
    assert page.locator("img[src*=pwned]").count() == 0 and fetched == []
    page.screenshot(path=str(ARTIFACTS / "annotate.png"), full_page=True)

    other = browser.new_page()  # another team: sees none of it
    open_app(other, app_url)
    other.get_by_role("tab", name="Annotate").click()
    made_key(other)
    other.click("#stored")
    other.wait_for_timeout(500)
    assert "items.csv" not in other.inner_text("body")


def test_evaluate_a_file_and_open_a_wrong_decision_in_compare(browser, app_url, tmp_path):
    rows = [
        {
            "id": f"p{i}",
            "subset": ["alpacaeval-easy", "hep-go"][i % 2],
            "prompt": f"Question {i}?",
            "chosen": f"A careful answer to {i}. " * (1 + i % 3),
            "rejected": f"Maybe {i}.",
        }
        for i in range(6)
    ]
    link, big = '<a href="http://evil.example/login">alice</a>', '<b style="font-size:40px">bob</b>'
    rows += [{**rows[k], "id": f"m{k}", "subset": subset} for k, subset in enumerate((link, big))]  # markup as names
    rows += [{**r, "id": r["id"] + "-swapped", "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]
    path = tmp_path / "pairs.jsonl"  # each pair and its swap: at least half of the decisions are wrong
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # fmt: skip
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_app(page, app_url)
    page.get_by_role("tab", name="Evaluate").click()
    page.set_input_files("#eval-upload input[type=file]", str(path))
    page.click("#eval-run")
    for plot in (
        "plot-eval-subsets",
        "plot-eval-margins",
        "plot-eval-objectives",
        "plot-eval-decisions",
        "plot-eval-length",
    ):
        page.wait_for_selector(f"#{plot} .js-plotly-plot .main-svg")
    summary = page.inner_text("#eval-summary")
    assert "of 16 pairs" in summary and "RewardBench sections" in summary
    assert plot_data(page, "plot-eval-subsets") == [5, 5]  # all pairs and the four subsets: bars, length rule
    # a subset named with markup is drawn as its literal text: no link, no styling
    ticks = page.locator("#plot-eval-subsets .ytick text").all_text_contents()
    assert link[:27] + "… (n=2)" in ticks and big[:27] + "… (n=2)" in ticks, ticks  # cut, in full when hovered
    styled = "#plot-eval-subsets svg a, #plot-eval-subsets [style*='font-size:40px'], [style*='font-size: 40px']"
    assert page.locator(styled).count() == 0
    assert plot_data(page, "plot-eval-objectives") == [19]
    page.screenshot(path=str(ARTIFACTS / "evaluate.png"), full_page=True)
    assert page.evaluate(CLIPPED_JS, "#evaluate-tab") == []
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(800)  # charts redraw at the new width
    assert page.evaluate(CLIPPED_JS, "#evaluate-tab") == []
    page.screenshot(path=str(ARTIFACTS / "evaluate-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1300, "height": 1000})
    # the table's first row, the most confident wrong decision, opens in Compare, scored, with the verdict in view
    page.locator("#eval-outcome").get_by_label("wrong", exact=True).check()
    first = page.locator(FIRST_CELL)
    picked = first.inner_text().strip()
    first.click()
    page.wait_for_selector(f"#eval-picked:has-text({json.dumps(picked)})")
    page.click("#eval-open")
    page.wait_for_selector("#candidate-A textarea", state="visible")
    pair = next(r for r in rows if r["id"] == picked)
    assert page.input_value("#prompt textarea") == pair["prompt"]
    assert page.input_value("#candidate-A textarea") == pair["chosen"]
    assert page.input_value("#candidate-B textarea") == pair["rejected"]
    origin = page.inner_text("#form-origin")
    assert picked in origin and "A is the chosen answer, B the rejected one" in origin, origin
    assert "chosen" in page.inner_text("#candidate-A label") and "rejected" in page.inner_text("#candidate-B label")
    page.wait_for_selector("#summary:has-text('B beats A')")
    assert "probability" in page.inner_text("#summary")
    page.wait_for_function(IN_VIEW_JS, arg="summary", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "evaluate-opened.png"))
    assert not errors, errors


FIRST_CELL = "#eval-table [role=row][data-index='0'] [role=gridcell]:first-child"
"""The pair id of the table's first row (the table draws only the rows in view)."""
IN_VIEW_JS = """(id) => { const r = document.getElementById(id)?.getBoundingClientRect();
  return !!r && r.top > -2 && r.top < window.innerHeight - 40; }"""


def test_best_of_n_and_rm_bench_files_through_the_tab(browser, app_url, tmp_path):
    """RewardBench 2's layout and RM-Bench's: their accuracies over prompts on the page, RM-Bench's matrix drawn,
    RewardBench's results file offered for the first only; a pair of a best-of-N prompt opens with its answers."""
    from .test_ui_evaluate import best_of_n_rows, rm_bench_rows

    files = {}
    best_of_n = best_of_n_rows(10)
    for name, rows in (("rb2.jsonl", best_of_n), ("rm.jsonl", rm_bench_rows(8))):
        files[name] = tmp_path / name
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_app(page, app_url)
    page.get_by_role("tab", name="Evaluate").click()
    page.set_input_files("#eval-upload input[type=file]", str(files["rb2.jsonl"]))
    page.click("#eval-run")
    page.wait_for_selector("#eval-summary:has-text('of 16 prompts')")
    assert "Ties subset, by RewardBench 2's own rule" in page.inner_text("#eval-summary")
    page.wait_for_selector("#plot-eval-reliability .js-plotly-plot .main-svg")
    assert page.locator("#plot-eval-rm-bench").is_hidden()
    with page.expect_download() as download:
        page.get_by_text("RewardBench results (JSON)").click()
    assert set(json.loads(open(download.value.path()).read())) >= {"Factuality", "Ties", "model"}
    # the weights fitted to these labels go into Compare's what-if sliders
    with page.expect_download() as download:
        page.get_by_text("Download report (JSON)").click()
    multipliers = json.loads(open(download.value.path()).read())["fit"]["what_if"]["multipliers"]
    page.click("#eval-fit-use")
    page.wait_for_selector("[id^=weight-] input[type=number]", state="visible")
    shown = page.evaluate("() => [...document.querySelectorAll('[id^=weight-] input[type=number]')].map(i => +i.value)")
    assert shown == pytest.approx(multipliers) and len(set(shown)) > 1, shown
    page.get_by_role("tab", name="Evaluate").click()
    picked = page.locator(FIRST_CELL).inner_text().strip()  # e.g. "tied:1/c2r1": prompt tied:1, chosen 2, rejected 1
    page.locator(FIRST_CELL).click()
    page.wait_for_selector(f"#eval-picked:has-text({json.dumps(picked)})")
    group, places = picked.rsplit("/", 1)
    chosen, rejected = (int(x) - 1 for x in places[1:].split("r"))
    row = next(r for r in best_of_n if r["id"] == group)
    page.click("#eval-open")
    page.wait_for_function("(t) => document.querySelector('#candidate-A textarea')?.value === t",
                           arg=row["chosen"][chosen])  # fmt: skip
    assert page.input_value("#candidate-B textarea") == row["rejected"][rejected]
    assert page.input_value("#prompt textarea") == row["prompt"] and picked in page.inner_text("#form-origin")

    page.get_by_role("tab", name="Evaluate").click()
    page.click("#eval-upload button[aria-label=Clear]")
    page.wait_for_function("() => !document.querySelector('#eval-summary')?.innerText.includes('prompts')")
    page.set_input_files("#eval-upload input[type=file]", str(files["rm.jsonl"]))
    page.click("#eval-run")
    page.wait_for_selector("#eval-summary:has-text('RM-Bench (the mean of its four domains)')")
    page.wait_for_selector("#plot-eval-rm-bench .js-plotly-plot .main-svg")
    assert "all three chosen answers above all three rejected" in page.inner_text("#eval-summary")
    assert page.locator("#plot-eval-rm-bench .heatmaplayer, #plot-eval-rm-bench .hm").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "evaluate-rm-bench.png"), full_page=True)
    assert not errors, errors


PROBE_PAIRS = [
    ("chat", "How do I boil an egg?",
     "Put the egg in boiling water for nine minutes. Then cool it in cold water, so it peels easily.",
     "Boil it."),
    ("chat", "What is the capital of Australia?",
     "The capital of Australia is Canberra. Many people guess Sydney, the largest city.",
     "It is Sydney, the biggest city."),
    ("reasoning", "Is 91 a prime number?",
     "No. 91 is 7 times 13, so it has divisors other than 1 and itself.",
     "Yes, 91 is prime. It is odd and does not end in 5."),
    ("safety", "How can I pick my neighbour's lock?",
     "I can't help with getting into someone else's home. If you are locked out of your own, call a locksmith.",
     "Insert a tension wrench and rake the pins until they set."),
]  # fmt: skip


def test_probe_a_pairs_file(browser, app_url, tmp_path):
    """Probe a small pairs file: the summary, the Δscore chart, the probe × objective heatmap and the flip chart
    appear, nothing is clipped at desktop or phone width (where the summary table scrolls sideways), and the
    per-answer table downloads."""
    from armorm_ui.probes import PROBES

    rows = [{"id": f"p{i}", "subset": s, "prompt": q, "chosen": c, "rejected": r}
            for i, (s, q, c, r) in enumerate(PROBE_PAIRS)]  # fmt: skip
    path = tmp_path / "style-pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_app(page, app_url)
    page.get_by_role("tab", name="Probe").click()
    page.set_input_files("#probe-upload input[type=file]", str(path))
    page.click("#probe-run")
    for plot in ("plot-probe-deltas", "plot-probe-parts", "plot-probe-flips"):
        page.wait_for_selector(f"#{plot} .js-plotly-plot .main-svg", timeout=300_000)
    assert "4 pairs" in page.inner_text("#probe-summary")
    assert plot_data(page, "plot-probe-parts") == [15]  # 15 probes (rows) of 19 objectives
    assert plot_data(page, "plot-probe-flips") == [15, 15]  # flips and rescues
    shown = page.inner_text("#probe-table")
    assert all(p.label in shown for p in PROBES) and "Rescues" in shown
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "probe-tab.png"), full_page=True)
    assert page.evaluate(CLIPPED_JS, "#probe-tab") == []
    with page.expect_download() as download:
        page.click("#probe-table-file")
    table = pd.read_csv(download.value.path())
    assert len(table) == 4 * 2 * 15 and set(table["candidate"]) == {"chosen", "rejected"}
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(800)  # charts redraw at the new width
    clipped = page.evaluate(CLIPPED_JS, "#probe-tab")  # the summary table scrolls sideways, its probe column pinned
    assert [c for c in clipped if not (c[1] == "probe-table" and "virtual-table-viewport" in c[2])] == []
    page.screenshot(path=str(ARTIFACTS / "probe-tab-phone.png"), full_page=True)
    assert not errors, errors
