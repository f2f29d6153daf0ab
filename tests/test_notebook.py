"""probes in a real Jupyter kernel: a notebook run by nbclient through ipykernel, as Jupyter runs one.

What a notebook user sees: a result's cell output is its interactive view (and works when shown), a
dataframe is a table, a long call draws a progress line that updates in place (no widget library
needed), and nothing is printed to stderr: no warning from the libraries underneath.
"""

from __future__ import annotations

import json
import re

import pytest
from browsers import shown_top
from test_views import embedded, in_notebook_frame

import probes
from probes.tokens import show_token
from probes.views.lens import lens_view

WHY = "a real kernel needs nbclient and ipykernel (the test extra)"
nbclient = pytest.importorskip("nbclient", reason=WHY)
pytest.importorskip("ipykernel", reason=WHY)

PROMPT = "ROMEO: But soft, what light"
TEXTS = ["JULIET: O Romeo, Romeo! wherefore art thou Romeo?"] * 30


@pytest.fixture(scope="module")
def cells(tiny_dir):
    """The outputs of each cell of a notebook run in a fresh kernel."""
    import nbformat

    code = [
        f"import probes\nmodel = probes.load(r'{tiny_dir}')\n"
        f"lens = probes.logit_lens(model, {PROMPT!r})\nlens",
        "lens.to_dataframe()",
        f"over = probes.lens_over(model, {TEXTS!r}, n_boot=20)\nover",
        "print(probes.hook_count(model))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return [c.outputs for c in nb.cells]


def _one(outputs, kind: str):
    found = [o for o in outputs if o.output_type == kind]
    assert len(found) == 1, outputs
    return found[0]


def test_nothing_goes_wrong_or_to_stderr(cells):
    for outputs in cells:
        assert not [o for o in outputs if o.output_type == "error"], outputs
        assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], outputs
    assert _one(cells[3], "stream").text == "0\n"  # the probes came off again


def test_a_result_shows_as_its_view(cells, tiny):
    lens = probes.logit_lens(tiny, PROMPT)
    shown = _one(cells[0], "execute_result").data
    assert shown["text/plain"] == repr(lens)
    frame = shown["text/html"]
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    import html

    view = embedded(html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)))
    want = json.loads(json.dumps(lens_view(lens)))
    assert view.keys() == want.keys() and view["panels"][0]["top"] == want["panels"][0]["top"]
    assert view["panels"][0]["p"] == pytest.approx(want["panels"][0]["p"], abs=1e-6)


def test_the_views_html_works_as_the_notebook_shows_it(cells, tiny, browser):
    lens = probes.logit_lens(tiny, PROMPT)
    page, frame, errors = in_notebook_frame(browser, _one(cells[0], "execute_result").data["text/html"])
    d = lens.as_dict()
    for r, j in [(1, 3), (lens.n_rows - 1, 0)]:
        frame.locator(f'.cell[data-r="{r}"][data-j="{j}"]').hover()
        token, prob = shown_top(frame.locator("body"))
        assert token == show_token(d["top_str_tokens"][r][j][0])
        assert prob == pytest.approx(d["top_probs"][r][j][0], rel=5e-4, abs=1e-6)
    assert errors == []
    page.close()


def test_a_dataframe_is_a_table(cells, tiny):
    table = _one(cells[1], "execute_result").data["text/html"]
    columns = probes.logit_lens(tiny, PROMPT).to_dataframe().columns
    assert "<table" in table and all(f"<th>{c}</th>" in table for c in columns)


def test_a_long_call_draws_one_progress_line(cells):
    line = _one(cells[2], "display_data").data
    assert list(line) == ["text/plain"]
    assert re.match(r"lens over texts  30/30 texts  [\d,.]+ texts/s  0:\d\d elapsed$", line["text/plain"])
    assert _one(cells[2], "execute_result").data["text/plain"].startswith("DatasetLens(")
