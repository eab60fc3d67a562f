"""Batch files: both layouts, three formats, round-tripped; bad files reported row by row with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armorm_ui.batch import BatchError, parse_items, results_frame, write_results
from armorm_ui.cli import main as cli
from armorm_ui.errors import ArmoRMError, InputError
from armorm_ui.validation import Limits

from .conftest import CARD_PROMPT, CARD_RESPONSES

ROOT = Path(__file__).resolve().parent.parent

ITEMS = [
    {"item_id": "card", "prompt": CARD_PROMPT, "responses": CARD_RESPONSES, "system": "", "conversation": []},
    {"item_id": "code", "prompt": "Reverse a list in Python.", "responses": ["l[::-1]", "=cmd|' /C calc'!A0"],
     "system": "Be brief.", "conversation": []},
    {"item_id": "multi", "prompt": "Why not Sydney?", "responses": ["Compromise.", "It is.", "No idea."],
     "system": "", "conversation": [{"role": "user", "content": "Capital of Australia?"},
                                    {"role": "assistant", "content": "Canberra."}]},
]  # fmt: skip


def wide_frame() -> pd.DataFrame:
    rows = []
    for it in ITEMS:
        row = {"item_id": it["item_id"], "prompt": it["prompt"], "system": it["system"],
               "conversation": json.dumps(it["conversation"]) if it["conversation"] else ""}  # fmt: skip
        for k in range(3):
            row[f"response_{k + 1}"] = it["responses"][k] if k < len(it["responses"]) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def long_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [{"item_id": it["item_id"], "prompt": it["prompt"], "system": it["system"],
          "conversation": json.dumps(it["conversation"]) if it["conversation"] else "", "response": r}
         for it in ITEMS for r in it["responses"]]
    )  # fmt: skip


def write(frame: pd.DataFrame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def expected_messages(it):
    return (
        ([{"role": "system", "content": it["system"]}] if it["system"] else [])
        + it["conversation"]
        + [{"role": "user", "content": it["prompt"]}]
    )


@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("fmt", [".csv", ".jsonl", ".parquet"])
def test_layouts_and_formats_round_trip(tmp_path, scorer, layout, fmt):
    src = write(wide_frame() if layout == "wide" else long_frame(), tmp_path / f"in{fmt}")
    items = parse_items(src, Limits())
    assert [i.item_id for i in items] == [it["item_id"] for it in ITEMS]
    for item, it in zip(items, ITEMS):
        assert item.candidates == it["responses"] and item.messages == expected_messages(it)
    results = [scorer.score(i.messages, i.candidates) for i in items]
    for out_fmt in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"out{out_fmt}"
        write_results(results_frame(items, results), out)
        back = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[
            out_fmt
        ](out)
        for it in ITEMS:  # the file's scores are the API's scores for the same items
            api = scorer.score(expected_messages(it), it["responses"])
            rows = back[back["item_id"].astype(str) == it["item_id"]]
            np.testing.assert_allclose(rows["score"].to_numpy(float), api.scores, atol=1e-9)
            np.testing.assert_allclose(rows["helpsteer-helpfulness.reward"].to_numpy(float), api.rewards[:, 0])
        assert len(back.columns) == 5 + 19 * 5


def test_csv_output_escapes_formulas(tmp_path, scorer):
    items = parse_items(write(wide_frame(), tmp_path / "in.csv"), Limits())
    out = tmp_path / "out.csv"
    write_results(results_frame(items, [scorer.score(i.messages, i.candidates) for i in items]), out)
    assert "'=cmd|" in out.read_text() and "\n=cmd" not in out.read_text()


BAD_FILES = [
    ("no_prompt.csv", "question,response_1\nhi,there\n", "no 'prompt' column; found: question, response_1"),
    ("dup.csv", "prompt,response_1,response_1\nq,a,b\n", "column 'response_1' appears 2 times"),
    ("ragged.csv", "prompt,response_1\nq,a\nq2,b,extra\n", "line 3: 3 fields, the header has 2"),
    ("quote.csv", 'prompt,response_1\nq,"unterminated\n', "line 2: unexpected end of data .an unterminated quote"),
    ("empty_cell.csv", "prompt,response_1,response_2\nq,,b\n", "line 2: response_1 is empty between other"),
    ("nul.csv", "prompt,response_1\nq,a\x00b\n", "line 2: .*NUL"),
    ("json.jsonl", '{"prompt": "q", "response_1": "a"}\n{"prompt": "q2", "response_1": \n', "line 2: not valid JSON"),
    ("types.jsonl", '{"prompt": "q", "response_1": 3.5}\n', "line 1: response_1 is float 3.5; text is expected"),
    ("nan.jsonl", '{"prompt": NaN, "response_1": "a"}\n', "line 1: prompt is empty"),
    ("array.jsonl", '["q", "a"]\n', "line 1: a JSON object is expected, got list"),
    ("notparquet.parquet", "prompt,response_1\nq,a\n", "is named .parquet but holds text"),
    ("mixed.csv", "item_id,prompt,response\n1,q,a\n1,other,b\n", "line 3: item '1' has a different prompt"),
    ("noid.csv", "prompt,response\nq,a\n", "needs an 'item_id' column"),
    ("unknown.csv", "prompt,response_1,colour\nq,a,red\n", "unknown column"),
    ("conv.csv", "prompt,response_1,conversation\nq,a,[1]\n", 'conversation must be a list of {"role", "content"}'),
]


@pytest.mark.parametrize("name, content, match", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_reported_by_row(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        parse_items(path, Limits())


def test_every_bad_row_is_listed(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("prompt,response_1\nq,\n,a\nok,fine\nq,\u202e\n", encoding="utf-8")
    with pytest.raises(BatchError) as err:
        parse_items(path, Limits())
    assert [p.split(":")[0] for p in err.value.problems] == ["line 2", "line 3", "line 5"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("prompt,response_1\nq,a\nq,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="line 3 is not valid UTF-8"):
        parse_items(path, Limits())


def test_row_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("prompt,response_1\n" + "q,a\n" * 11, encoding="utf-8")
    with pytest.raises(InputError, match="more than 10 rows; the limit is 10"):
        parse_items(path, Limits(), max_rows=10)


def test_cli_writes_nothing_for_a_bad_file(tmp_path, demo_dir, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,response_1\nq,a\nq2,\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert cli(["score", str(bad), "-o", str(out), "--model", str(demo_dir), "--device", "cpu"]) == 2
    assert "line 3: no responses" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.csv.partial.jsonl").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=300)
    | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.lists(st.dictionaries(st.sampled_from(["prompt", "response_1", "response", "item_id", "system", "x"]),
                               st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)),
               max_size=4).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    suffix=st.sampled_from([".csv", ".jsonl", ".parquet", ".txt"]),
)  # fmt: skip
def test_any_file_gives_items_or_our_error(tmp_path, content, suffix):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(content)
    try:
        items = parse_items(path, Limits())
    except ArmoRMError as e:
        assert str(e)
        return
    assert items and all(i.candidates and i.messages[-1]["role"] == "user" for i in items)


def finishes(fn, seconds: float = 20):
    """Run fn in a thread; fail if it has not returned (or raised) within `seconds`: a hang guard, not a timing."""
    import threading

    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except Exception as e:  # handed to the caller below
            outcome["error"] = e

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_wide_header_is_refused_before_the_rows_are_read(tmp_path, suffix):
    path = tmp_path / f"wide{suffix}"
    if suffix == ".csv":  # the 7.9 MB one-line file: a million columns
        path.write_text("prompt," + ",".join(f"c{i}" for i in range(1, 1_000_000)) + "\n", encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text(json.dumps({f"c{i}": "x" for i in range(200_000)}) + "\n", encoding="utf-8")
    else:
        pd.DataFrame({f"c{i}": ["x"] for i in range(2_000)}).to_parquet(path)
    with pytest.raises(InputError, match=r"columns; at most 21 are read"):
        finishes(lambda: parse_items(path, Limits()))


def test_a_repeated_column_is_named_once(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("prompt,response_1,response_1,prompt\nq,a,b,q\n", encoding="utf-8")
    with pytest.raises(BatchError) as err:
        parse_items(path, Limits())
    assert err.value.problems == ["column 'prompt' appears 2 times in the header",
                                  "column 'response_1' appears 2 times in the header"]  # fmt: skip


BAD_IDS = [  # (JSON value of item_id, what the message says)
    ('"\\ud800"', "unpaired surrogate"),
    ('"a\\u0000b"', "NUL"),
    ('{"a": 1}', "item_id is dict"),
    ("[1, 2]", "item_id is list"),
    ("true", "item_id is bool"),
    ("2.5", "item_id is float"),
    (json.dumps("x" * 201), "item_id is 201 characters long; the limit is 200"),
]


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_every_item_id_is_checked_before_scoring(tmp_path, layout):
    column = "response_1" if layout == "wide" else "response"
    lines = [f'{{"item_id": {value}, "prompt": "q", "{column}": "a"}}' for value, _ in BAD_IDS]
    lines.append(f'{{"item_id": 7, "prompt": "q", "{column}": "a"}}')  # a whole number is a fine id
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BatchError) as err:
        parse_items(path, Limits())
    problems = [p for p in err.value.problems if "item_id is empty" not in p]
    assert len(problems) == len(BAD_IDS)
    for n, (problem, (_, match)) in enumerate(zip(problems, BAD_IDS), start=1):
        assert problem.startswith(f"line {n}:") and match in problem, problem


def test_deep_json_is_a_row_error(tmp_path):
    deep = "[" * 200_000 + "]" * 200_000
    path = tmp_path / "deep.jsonl"
    path.write_text('{"prompt": "q", "response_1": "a"}\n' + deep + "\n", encoding="utf-8")
    with pytest.raises(BatchError, match=r"line 2: not valid JSON \(nested too deeply\)"):
        parse_items(path, Limits())
    cell = tmp_path / "deep_cell.csv"
    pd.DataFrame([{"prompt": "q", "response_1": "a", "conversation": deep}]).to_csv(cell, index=False)
    with pytest.raises(BatchError, match=r"line 2: conversation is not valid JSON \(nested too deeply\)"):
        parse_items(cell, Limits(max_chars=10**6))


def test_a_huge_cell_names_the_limit_per_field(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("prompt,response_1\nq,ok\nq," + "x" * 400_000 + "\n", encoding="utf-8")
    with pytest.raises(BatchError, match="line 3: a cell is longer than 32,000 characters, the limit per message"):
        parse_items(path, Limits())


def test_roles_are_checked_with_the_file(tmp_path):
    path = tmp_path / "roles.csv"
    turns = json.dumps([{"role": "robot", "content": "hi"}])
    pd.DataFrame([{"prompt": "q", "response_1": "a", "conversation": turns}]).to_csv(path, index=False)
    with pytest.raises(BatchError, match="line 2: Message 1 has role 'robot'"):
        parse_items(path, Limits())


FORMULA = ("=", "+", "-", "@", "\uff1d")


def cells_as_a_spreadsheet_reads_them(text: str) -> list[str]:
    """Any of CR, LF or CRLF outside quotes starts a new row, as spreadsheets do."""
    import csv
    import io

    return [cell for row in csv.reader(io.StringIO(text, newline=None)) for cell in row]


def test_every_csv_export_stays_inert(tmp_path, scorer):
    from armorm_ui import tables
    from armorm_ui.label_store import LabelStore
    from armorm_ui.ui import annotate_views, views

    nasty = ["Looks fine\r=cmd|' /C calc'!A0", "ok\n@SUM(1+1)", "\r\n+1", "\uff1dHYPERLINK()", "-2+3"]
    messages = [{"role": "user", "content": "q\r=1+1"}]
    result = scorer.score(messages, nasty)
    labels = [chr(65 + k) for k in range(len(nasty))]
    state = {"result": result.to_dict(), "labels": labels, "responses": nasty, "messages": messages}
    exports = {"page": open(views.export_files(state)[0], encoding="utf-8").read()}

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"item_id": "=1\r=2", "prompt": "q", **{f"response_{k + 1}": t for k, t in
                                                                   enumerate(nasty)}}) + "\n")  # fmt: skip
    items = parse_items(src, Limits())
    out = tmp_path / "out.csv"
    write_results(results_frame(items, [scorer.score(i.messages, i.candidates) for i in items]), out)
    exports["batch"] = out.read_text(encoding="utf-8")

    store = LabelStore(tmp_path / "l.sqlite")
    who = store.sign_in(store.new_project(), "=ana\r=1", "ana-passcode")
    store.add_file(who.project, "f", "=x\r=y.csv", items)
    store.record(who, "f", items[0], 0, 1, None, "fine\r=HYPERLINK(1)", result)
    exports["labels"] = open(annotate_views.labels_export(store.frame(who.project))[0], encoding="utf-8").read()
    exports["table"] = tables.to_csv(pd.DataFrame({"a": nasty}))
    for name, text in exports.items():
        cells = cells_as_a_spreadsheet_reads_them(text)
        live = [c for c in cells if c.startswith(FORMULA) and not _number(c)]
        assert not live, (name, live)
        assert any("calc" in c or "HYPERLINK" in c for c in cells), name  # the text itself is kept


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


PEAK_PY = """
import resource, sys, time
from pathlib import Path
from armorm_ui.batch import parse_items
from armorm_ui.errors import InputError
from armorm_ui.validation import Limits
import pyarrow.parquet  # the baseline holds the reader too
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    parse_items(Path(sys.argv[1]), Limits(), max_rows=5000) if len(sys.argv) > 1 else None
    message = "accepted"
except InputError as e:
    message = str(e)
print(time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
print(message)
"""


@pytest.mark.parametrize(
    "kind, refusal",
    [("rows", "has 6,000,000 rows; the limit is 5,000 per file"), ("cells", "hold more text than 200,000 characters")],
)
def test_a_small_parquet_file_that_decodes_to_gigabytes_is_refused_cheaply(tmp_path, kind, refusal):
    """Six million rows in 64 KB, or a 1 MB text kept once in a column's dictionary and repeated in every row: each is
    refused after decoding a few rows at most, its reader's memory growing less than 200 MB (peak, measured in a
    fresh interpreter)."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / f"{kind}.parquet"
    if kind == "rows":
        table = pa.table({"prompt": pa.array(["q"] * 6_000_000), "response_1": pa.array(["a"] * 6_000_000)})
    else:
        long = pa.array(["x" * 2**20] * 1000).dictionary_encode()
        table = pa.table({"prompt": pa.array(["q"] * 1000), "response_1": long})
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 2**20  # small enough to upload
    ran = subprocess.run([sys.executable, "-c", PEAK_PY, str(path)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    numbers, message = ran.stdout.split("\n", 1)
    seconds, grown_mb = map(float, numbers.split())
    assert refusal in message, message
    assert grown_mb < 200, (grown_mb, seconds, message)
