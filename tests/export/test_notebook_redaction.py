"""Notebook redaction for export: real Presidio, real nbformat, no mocks."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from jupyter_guard.errors import GuardError
from jupyter_guard.export import (
    GUARD_METADATA_KEY,
    ExportError,
    ExportPlan,
    ExportReport,
    dumps_notebook,
    load_notebook,
    redact_notebook,
)
from jupyter_guard.export.notebook import _ANSI as ANSI
from jupyter_guard.scan_secrets import SECRET_HINT as _SECRET_HINT
from jupyter_guard.scan_secrets import SecretScanner

SSNS = ["536-22-8174", "425-61-9072"]
EMAILS = ["ann.lee@example.org", "bob.ng@example.com", "carol@example.net", "dave.k@example.org"]
PHONES = ["(212) 555-0142", "415-555-0132"]
BLOCKED = "Zoe Blocked zoe.blocked@example.org 611-45-2290"  # only in the blocked cell
PII = SSNS + EMAILS + PHONES + ["zoe.blocked@example.org", "611-45-2290"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PLAN = ExportPlan(policy_note="redacted under rule 'confidential-export-justified' (label confidential)",
                  blocked_cells=frozenset({"blocked"}))

TABLE = (
    '<table border="1" class="dataframe">\n<thead>\n<tr><th>name</th><th>ssn</th><th>email</th></tr>\n</thead>\n'
    "<tbody>\n"
    f"<tr><td>Ann &amp; co</td><td>{SSNS[0]}</td><td>{EMAILS[0]}</td></tr>\n"
    f"<tr><td>Bob</td><td>{SSNS[1]}</td><td><a href=\"mailto:{EMAILS[1]}\">{EMAILS[1]}</a></td></tr>\n"
    "</tbody>\n</table>"
)


def make_notebook() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# Analysis", id="intro"),
        new_code_cell("print(rows)", id="stream", execution_count=1, outputs=[
            new_output("stream", name="stdout", text=f"patient {SSNS[0]} reachable at {PHONES[0]}\nno pii here\n"),
        ]),
        new_code_cell("df", id="table", execution_count=2, outputs=[
            new_output("execute_result", execution_count=2, data={
                "text/plain": f"  name          ssn\n0  Ann  {SSNS[0]}\n1  Bob  {SSNS[1]}",
                "text/html": TABLE,
            }),
        ]),
        new_code_cell("display(Markdown(...))", id="md", execution_count=3, outputs=[
            new_output("display_data", data={
                "text/markdown": f"| who | mail |\n|---|---|\n| Carol | {EMAILS[2]} |",
                "text/plain": "<IPython.core.display.Markdown object>",
            }),
        ]),
        new_code_cell("JSON(record)", id="json", execution_count=4, outputs=[
            new_output("display_data", data={
                "application/json": {"contact": {EMAILS[3]: [PHONES[1], {"ssn": SSNS[1]}]}, "n": 2},
                "text/plain": "<IPython.core.display.JSON object>",
            }),
        ]),
        new_code_cell("lookup[email]", id="error", execution_count=5, outputs=[
            new_output("error", ename="KeyError", evalue=f"'{EMAILS[1]}'", traceback=[
                "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
                f"\x1b[0;31mKeyError\x1b[0m: '\x1b[1m{EMAILS[1][:4]}\x1b[0m{EMAILS[1][4:]}' (call {PHONES[0]})",
            ]),
        ]),
        new_code_cell("plt.plot(x)", id="plot", execution_count=6, outputs=[
            new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"}),
        ]),
        new_code_cell("restricted.head()", id="blocked", execution_count=7, outputs=[
            new_output("stream", name="stdout", text=BLOCKED + "\n"),
            new_output("execute_result", execution_count=7, data={"text/plain": BLOCKED}),
        ]),
    ]
    return nb


class TableShape(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        self.tags.append("/" + tag)

    def handle_data(self, data):
        self.text.append(data)


def shape(markup: str) -> TableShape:
    p = TableShape()
    p.feed(markup)
    p.close()
    return p


@pytest.fixture(scope="module")
def redacted():
    nb = make_notebook()
    before = nbformat.writes(nb)
    out, report = redact_notebook(nb, PLAN)
    assert nbformat.writes(nb) == before, "the input notebook was modified"
    return nb, out, report


def test_no_pii_value_survives_anywhere(redacted):
    _, out, _ = redacted
    text = dumps_notebook(out)
    for value in PII:
        assert value not in text, value
        assert json.dumps(value)[1:-1] not in text
    nbformat.validate(out)


def test_each_output_kind_is_redacted_in_place(redacted):
    _, out, _ = redacted
    cells = {c.get("id"): c for c in out.cells}
    assert cells["stream"].outputs[0].text == "patient <US_SSN> reachable at <PHONE_NUMBER>\nno pii here\n"
    data = cells["table"].outputs[0].data
    assert "<US_SSN>" in data["text/plain"]
    md = cells["md"].outputs[0].data["text/markdown"]
    assert md.endswith("| Carol | &lt;EMAIL_ADDRESS&gt; |")
    js = cells["json"].outputs[0].data["application/json"]
    assert js == {"contact": {"<EMAIL_ADDRESS>": ["<PHONE_NUMBER>", {"ssn": "<US_SSN>"}]}, "n": 2}
    err = cells["error"].outputs[0]
    assert err.evalue == "'<EMAIL_ADDRESS>'"
    assert err.traceback[0].startswith("\x1b[0;31m---")  # colours kept
    assert err.traceback[1].startswith("\x1b[0;31mKeyError\x1b[0m: '")
    assert ANSI.sub("", err.traceback[1]) == "KeyError: '<EMAIL_ADDRESS>' (call <PHONE_NUMBER>)"


def test_html_table_stays_valid_with_tags_as_text(redacted):
    _, out, _ = redacted
    new_html = next(c for c in out.cells if c.get("id") == "table").outputs[0].data["text/html"]
    before, after = shape(TABLE), shape(new_html)
    assert after.tags == before.tags  # same elements, same nesting: the table structure is intact
    cells_text = "".join(after.text)
    assert "<US_SSN>" in cells_text and "<EMAIL_ADDRESS>" in cells_text  # shown as text, not as elements
    assert "Ann & co" in cells_text  # entities still decode as before
    assert 'href="mailto:&lt;EMAIL_ADDRESS&gt;"' in new_html


def test_placeholders_header_and_metadata(redacted):
    _, out, report = redacted
    header = out.cells[0]
    assert header.cell_type == "markdown" and header.metadata[GUARD_METADATA_KEY]["export_header"]
    assert "Redacted export" in header.source and PLAN.policy_note in header.source
    assert "US_SSN" in header.source
    cells = {c.get("id"): c for c in out.cells}
    blocked = cells["blocked"].outputs
    assert len(blocked) == 1 and blocked[0].metadata[GUARD_METADATA_KEY]["withheld"] == "blocked"
    assert "withheld" in blocked[0].data["text/plain"] and PLAN.policy_note in blocked[0].data["text/plain"]
    plot = cells["plot"].outputs
    assert len(plot) == 1 and "image/png" not in plot[0].data and "image/png" in plot[0].data["text/plain"]
    meta = out.metadata[GUARD_METADATA_KEY]["export"]
    assert meta == {"redacted": True, "policy_note": PLAN.policy_note, "plan": PLAN.to_metadata(), "counts": report.to_dict()}
    assert "known_secrets" not in meta["plan"]  # secrets never travel in the notebook


def test_counts(redacted):
    _, _, report = redacted
    assert isinstance(report, ExportReport)
    assert report.cells_blocked == 1
    assert report.outputs_removed == 3  # the two blocked outputs and the figure
    assert report.outputs_scanned == 5
    # URL 2: Presidio reads "IPython.core.display" in the two display objects' reprs as a URL
    # (in sources, attribute access such as restricted.head() is never taken for one)
    assert report.entity_counts == {"EMAIL_ADDRESS": 7, "PHONE_NUMBER": 3, "URL": 2, "US_SSN": 6}
    assert report.secrets_masked == 0
    d = report.to_dict()
    assert set(d) == {"outputs_scanned", "outputs_removed", "cells_blocked", "entity_counts", "secrets_masked"}
    assert not any(v in json.dumps(d) for v in PII)


def test_deterministic_and_idempotent():
    a, _ = redact_notebook(make_notebook(), PLAN)
    b, _ = redact_notebook(make_notebook(), PLAN)
    assert dumps_notebook(a) == dumps_notebook(b)
    again, report = redact_notebook(a, PLAN)  # an export of an export keeps one header cell
    assert sum(1 for c in again.cells if c.get("id") == "jupyter-guard-export") == 1
    assert report.entity_counts == {}


def test_secrets_known_and_detected():
    password = "pa55:w/rd-Xq9"
    nb = new_notebook()
    nb.metadata[GUARD_METADATA_KEY] = {"export_plan": {**PLAN.to_metadata(), "known_secrets": [password]}}
    nb.cells = [new_code_cell(f"engine = connect('pg', password='{password}')", id="c", outputs=[
        new_output("stream", name="stdout", text=f"url postgresql://u:{password}@db/x\n"),
        new_output("stream", name="stdout", text="quoted: postgresql://u:pa55%3Aw%2Frd-Xq9@db/x\n"),
        new_output("stream", name="stdout", text="aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"),
    ])]
    out, report = redact_notebook(nb, ExportPlan("p", known_secrets=(password,)))
    text = dumps_notebook(out)
    for value in (password, "pa55%3Aw%2Frd-Xq9", "AKIAIOSFODNN7EXAMPLE"):
        assert value not in text
    assert "password='***'" in out.cells[1].source
    assert "<SECRET>" in out.cells[1].outputs[2].text
    assert report.secrets_masked >= 4
    assert "known_secrets" not in out.metadata[GUARD_METADATA_KEY]["export_plan"]


def test_scan_off_still_blocks_and_drops():
    out, report = redact_notebook(make_notebook(), ExportPlan("raw export", blocked_cells=frozenset({"blocked"}), scan=False))
    text = dumps_notebook(out)
    assert SSNS[0] in text and "zoe.blocked@example.org" not in text and PNG not in text
    assert report.outputs_scanned == 0 and report.entity_counts == {}


def test_keep_unscannable_when_asked():
    out, report = redact_notebook(make_notebook(), ExportPlan("p", drop_unscannable=False))
    assert PNG in dumps_notebook(out) and report.outputs_removed == 0


def test_plan_metadata_round_trip():
    plan = ExportPlan("n", blocked_cells=frozenset({"b", "a"}), known_secrets=("s3cr3t",), max_output_bytes=5)
    meta = plan.to_metadata()
    assert meta["blocked_cells"] == ["a", "b"] and "known_secrets" not in meta
    assert ExportPlan.from_metadata(json.loads(json.dumps(meta))) == ExportPlan(
        "n", blocked_cells=frozenset({"a", "b"}), max_output_bytes=5)
    with pytest.raises(ExportError):
        ExportPlan.from_metadata({"max_output_bytes": "lots"})


# -- bad input -----------------------------------------------------------------------------------


def test_load_nbformat_4_and_3():
    nb = load_notebook(nbformat.writes(make_notebook()).encode())
    assert len(nb.cells) == 8
    v3 = {
        "nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"},
        "worksheets": [{"cells": [
            {"cell_type": "code", "input": "print(p)", "language": "python", "prompt_number": 1, "outputs": [
                {"output_type": "stream", "stream": "stdout", "text": f"mail {EMAILS[0]}\n"},
                {"output_type": "pyout", "prompt_number": 1, "text": f"'{SSNS[0]}'", "html": f"<b>{EMAILS[1]}</b>"},
            ]},
        ]}],
    }
    raw = json.dumps(v3).encode()
    a, b = load_notebook(raw), load_notebook(raw)
    assert a.nbformat == 4 and a == b  # ids do not depend on chance
    out, report = redact_notebook(a, PLAN)
    text = dumps_notebook(out)
    assert EMAILS[0] not in text and EMAILS[1] not in text and SSNS[0] not in text
    assert report.entity_counts == {"EMAIL_ADDRESS": 2, "US_SSN": 1}


@pytest.mark.parametrize(("data", "words"), [
    (b'{"nbformat": 4, "cells": [', "JSON error at line 1"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8"),
    ('{"nbformat": 4, "cells": [\u00e9]}'.encode("latin-1"), "not UTF-8"),
    (b"[1, 2]", "no `nbformat`"),
    (b'{"nbformat": 5, "cells": []}', "unsupported notebook format"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "bogus"}]}', "not a valid notebook"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "cells": []}', "not a valid notebook"),
    (b'{"nbformat": 3, "nbformat_minor": 0, "metadata": {}}', "not a valid notebook"),
])
def test_malformed_input_is_a_clear_error(data, words):
    with pytest.raises(ExportError) as info:
        load_notebook(data)
    assert isinstance(info.value, GuardError)
    assert words in str(info.value)


def test_cells_without_ids_get_stable_ids():
    nb = json.loads(nbformat.writes(make_notebook()))
    for c in nb["cells"]:
        del c["id"]
    loaded = load_notebook(json.dumps(nb))
    assert [c.id for c in loaded.cells][:2] == ["cell-0", "cell-1"]


def test_100_mb_output_is_withheld_not_scanned():
    nb = make_notebook()
    big = (f"row {SSNS[0]} {EMAILS[0]}\n" * 4_000_000)[: 100_000_000]
    nb.cells[1].outputs.append(new_output("stream", name="stdout", text=big))
    t = time.perf_counter()
    out, report = redact_notebook(nb, PLAN)
    assert time.perf_counter() - t < 30
    withheld = out.cells[2].outputs[1]
    assert withheld.metadata[GUARD_METADATA_KEY]["withheld"] == "large"
    assert "10000000 bytes" in withheld.data["text/plain"]
    assert report.outputs_removed == 4
    del big
    assert SSNS[0] not in dumps_notebook(out)


def _deep(depth: int, leaf):
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


def test_deeply_nested_json_output_is_withheld_in_memory():
    nb = make_notebook()
    nb.cells[4].outputs.append(new_output("display_data", data={"text/plain": "x"}))
    # NotebookNode's own __setitem__ would convert (recursively) what it is given
    dict.__setitem__(nb.cells[4].outputs[-1].data, "application/json", {"deep": _deep(10_000, SSNS[0])})
    out, report = redact_notebook(nb, PLAN)
    assert out.cells[5].outputs[-1].metadata[GUARD_METADATA_KEY]["withheld"] == "deep"
    assert report.outputs_removed == 4


def test_deeply_nested_json_output_is_withheld_from_a_file():
    text = nbformat.writes(make_notebook())
    doc = json.loads(text)
    doc["cells"][4]["outputs"].append({"output_type": "display_data", "metadata": {},
                                        "data": {"application/json": {"deep": "HERE"}}})
    raw = json.dumps(doc).replace('"HERE"', "[" * 10_000 + json.dumps(SSNS[0]) + "]" * 10_000)
    with pytest.raises(RecursionError):
        json.loads(raw)  # what Python's own parser does with it
    nb = load_notebook(raw.encode())
    out, _ = redact_notebook(nb, PLAN)
    assert out.cells[5].outputs[-1].metadata[GUARD_METADATA_KEY]["withheld"] == "deep"
    assert SSNS[0] not in dumps_notebook(out)


def test_unknown_output_type_and_mime_are_withheld():
    nb = new_notebook()
    nb.cells = [new_code_cell("w", id="w", outputs=[
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m1"},
                                         "text/plain": "IntSlider()"}),
        new_output("display_data", data={"application/pdf": "JVBERi0="}),
    ])]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m1": {"value": EMAILS[0]}}}}
    out, report = redact_notebook(nb, PLAN)
    assert report.outputs_removed == 2 and "widgets" not in out.metadata
    assert EMAILS[0] not in dumps_notebook(out)


SECRET_LINES = [
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "AKIAIOSFODNN7EXAMPLE",
    "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",
    "glpat-Xq3bT7cN5mW9vK2pL8rY",
    "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "xoxb-1234-5678-abcdefghij",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "AC1234567890abcdef1234567890abcdef",
    "url postgresql://user:hunter22@db.example.org/x",
    "-----BEGIN RSA PRIVATE KEY-----",
    "password = 'correct horse'",
    "AKCp8jQ8nV9cdmL2xKr9",
    "APBabcdef12345",
    "api = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFi'",
    "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",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
]


@pytest.mark.parametrize("line", SECRET_LINES)
def test_secret_prefilter_never_hides_a_secret(line, monkeypatch):
    """Secret detection runs only on text matching SECRET_HINT: a line in which
    detect-secrets finds anything must match it (found here with the hint switched off)."""
    from jupyter_guard import scan_secrets

    monkeypatch.setattr(scan_secrets, "SECRET_HINT", re.compile(""))
    with SecretScanner() as scanner:
        found = scanner.find(line)
    if found:
        assert _SECRET_HINT.search(line), line


def test_pii_written_in_cell_sources_is_redacted_and_code_names_are_kept():
    """Issue 14, finding 7: df[df.ssn == "536-80-4398"] was exported as written."""
    nb = new_notebook(cells=[
        new_code_cell('hit = df[df.ssn == "536-80-4398"]\nhit.head()', id="c1"),
        new_markdown_cell("Ask ann.lee@example.com about it", id="m1"),
    ])
    out, report = redact_notebook(nb, ExportPlan("p"))
    code, md = out.cells[1].source, out.cells[2].source
    assert "536-80-4398" not in code and "<US_SSN>" in code and "hit.head()" in code
    assert "ann.lee@example.com" not in md and "&lt;EMAIL_ADDRESS&gt;" in md
    assert report.entity_counts == {"EMAIL_ADDRESS": 1, "US_SSN": 1}
    kept, _ = redact_notebook(nb, ExportPlan("p", scan_sources=False))
    assert "536-80-4398" in kept.cells[1].source  # configurable: off exports sources as written
