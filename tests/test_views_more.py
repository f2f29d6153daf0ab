"""The other interactive views (dataset lens, prune), checked as data and in a real browser.

The browser, the page recorder and the checks on a page's data are those of test_views.py.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from cli_runner import run_cli
from test_views import Opened, chromium_browser, embedded, fetches

import probes
from probes.errors import ProbesError, SpecError

TEXTS = [
    "JULIET: Good night, good night! Parting is such sweet sorrow",
    "To be, or not to be, that is the question",
    "ROMEO: But soft, what light through yonder window breaks?",
    "O happy dagger, this is thy sheath",
]


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


def not_blank(png: bytes) -> None:
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 20 and pixels.std() > 0.03, (len(colours), pixels.std())


# ---- the dataset lens ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(tiny):
    import torch

    from probes.studies.lens.tuned import TunedLens

    lens = TunedLens.identity(tiny)
    with torch.no_grad():
        lens.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    return lens


@pytest.fixture(scope="module")
def over(tiny, tuned):
    """The logit lens and a tuned lens over TEXTS, each with a compare_skip run."""
    return probes.lens_over(tiny, TEXTS, lens=[None, tuned], compare_skip="1", n_boot=100)


def test_dataset_page_holds_the_results_numbers(over, tmp_path):
    logit, through = over
    page = logit.to_html(tmp_path / "d.html", others=[through]).read_text(encoding="utf-8")
    assert not fetches(page) and "default-src 'none'" in page
    view = embedded(page)
    assert view["kind"] == "dataset" and view["rows"] == logit.row_labels
    names = [s["name"] for s in view["series"]]
    assert names[0] == "logit lens, full model" and names[1].startswith("logit lens, blocks 1 skipped")
    assert names[2].startswith("tuned lens (") and len(names) == 4
    assert view["series"][0]["values"] == logit.as_dict()["metrics"]
    assert view["series"][1]["values"] == logit.compare.as_dict()["metrics"]
    assert view["series"][2]["values"] == through.as_dict()["metrics"]
    assert view["series"][1]["skipped"] == [2]  # the row after block 1


def test_dataset_others_must_match(tiny, over):
    logit, _ = over
    with pytest.raises(SpecError, match="same texts"):
        logit.to_html("unused.html", others=[probes.lens_over(tiny, TEXTS[:2], n_boot=10)])
    with pytest.raises(SpecError, match="different lens"):
        logit.to_html("unused.html", others=[logit])
    with pytest.raises(ProbesError, match="ending in .html"):
        logit.to_html("x.png")


def test_dataset_notebook_frame(over):
    import html

    frame = over[0]._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert embedded(page)["series"][0]["values"] == over[0].as_dict()["metrics"]


def test_cli_dataset_html(tiny, tiny_dir, tuned, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    folder = tuned.save(tmp_path / "lens")
    out = tmp_path / "layers.html"
    got = run_cli("lens", "--model", tiny_dir, "--dataset", texts, "--tuned", folder, "--html", out)
    assert got.exit_code == 0, got.output
    assert "wrote the interactive dataset lens view" in got.stderr
    view = embedded(out.read_text(encoding="utf-8"))
    assert [s["lens"] for s in view["series"]] == ["logit lens", f"tuned lens ({folder})"]
    # The path is checked before the model loads.
    got = run_cli("lens", "--model", tiny_dir, "--dataset", texts, "--html", out)
    assert got.exit_code == 2 and "already exists; pass --force" in got.stderr
    assert "loading" not in got.stderr


def readout(view) -> dict[int, tuple[float, float, float]]:
    """The readout beside the chart: series index -> (mean, low, high) as shown."""
    out = {}
    for body in view.page.locator("table.readout tbody").all():
        i = int(body.get_attribute("data-series"))
        out[i] = tuple(float(body.locator(f".{c}").inner_text()) for c in ("mean", "low", "high"))
    return out


def test_dataset_hover_shows_the_exact_numbers(browser, over, tmp_path):
    logit, through = over
    view = Opened(browser, logit.to_html(tmp_path / "d.html", others=[through]))
    series = [logit, logit.compare, through, through.compare]
    for metric in ["kl_to_final", "next_accuracy"]:
        view.page.check(f'input[name="metric"][value="{metric}"]')
        for r in [0, 1, logit.n_rows - 1]:
            view.page.locator(f'.hit[data-r="{r}"]').hover()
            assert f"row {logit.row_labels[r]}" in view.page.locator(".details .where").inner_text()
            shown = readout(view)
            for i, result in enumerate(series):
                d = result.as_dict()["metrics"][metric]
                assert shown[i] == (d["mean"][r], d["low"][r], d["high"][r])
    view.close()


def test_dataset_metric_switch_redraws_and_keys_move(browser, over, tmp_path):
    logit, through = over
    view = Opened(browser, logit.to_html(tmp_path / "d.html", others=[through]))
    page = view.page
    lines = lambda: page.eval_on_selector_all("path.line", "ps => ps.map(p => p.getAttribute('d'))")
    before = lines()
    page.check('input[name="metric"][value="entropy"]')
    after = lines()
    assert len(before) == len(after) == 4 and all(a != b for a, b in zip(before, after))
    # A series can be hidden from the legend.
    page.locator('.legend input[data-series="1"]').uncheck()
    assert page.locator("path.line").count() == 3 and page.locator("table.readout tbody").count() == 3
    # Keyboard: the chart takes focus, the arrows move the readout's row.
    page.focus("svg.plot")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    assert page.locator(".details .where b").inner_text() == f"row {logit.row_labels[1]}"
    not_blank(page.screenshot(full_page=True))
    view.close()
