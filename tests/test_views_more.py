"""The other interactive views (dataset lens, prune), checked as data and in a real browser.

The browsers (tests/browsers.py) and the checks on a page's data are those of test_views.py.
"""

from __future__ import annotations

import re

import pytest
from browsers import Opened, not_blank
from cli_runner import run_cli
from test_views import embedded, fetches, in_notebook_frame

import probes
from probes.errors import ProbesError, SpecError

TEXTS = [
    "JULIET: Good night, good night! Parting is such sweet sorrow",
    "To be, or not to be, that is the question",
    "ROMEO: But soft, what light through yonder window breaks?",
    "O happy dagger, this is thy sheath",
]


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


def test_dataset_others_must_match(tiny, tuned, over):
    logit, _ = over
    with pytest.raises(SpecError, match="same texts"):
        logit.to_html("unused.html", others=[probes.lens_over(tiny, TEXTS[:2], n_boot=10)])
    with pytest.raises(SpecError, match="different lens"):
        logit.to_html("unused.html", others=[logit])
    with pytest.raises(SpecError, match="compare_skip run too"):
        logit.to_html("unused.html", others=[probes.lens_over(tiny, TEXTS, n_boot=10, lens=tuned)])
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
    shown = view.evaluate(
        "[...document.querySelectorAll('table.readout tbody')].map(b => [+b.dataset.series,"
        " ...['mean', 'low', 'high'].map(c => b.querySelector('.' + c).innerText)])"
    )
    return {i: tuple(map(float, numbers)) for i, *numbers in shown}


def test_dataset_hover_shows_the_exact_numbers(opener, over, tmp_path):
    logit, through = over
    view = opener(logit.to_html(tmp_path / "d.html", others=[through]))
    series = [logit, logit.compare, through, through.compare]
    for metric in ["kl_to_final", "next_accuracy"]:
        view.check(f'input[name="metric"][value="{metric}"]')
        for r in [0, 1, logit.n_rows - 1]:
            view.hover(f'.hit[data-r="{r}"]')
            assert f"row {logit.row_labels[r]}" in view.text(".details .where")
            shown = readout(view)
            for i, result in enumerate(series):
                d = result.as_dict()["metrics"][metric]
                assert shown[i] == (d["mean"][r], d["low"][r], d["high"][r])
    view.close()


def test_dataset_metric_switch_redraws(opener, over, tmp_path):
    logit, through = over
    view = opener(logit.to_html(tmp_path / "d.html", others=[through]))
    lines = lambda: view.evaluate("[...document.querySelectorAll('path.line')].map(p => p.getAttribute('d'))")
    before = lines()
    view.check('input[name="metric"][value="entropy"]')
    after = lines()
    assert len(before) == len(after) == 4 and all(a != b for a, b in zip(before, after))
    not_blank(view.screenshot(), colours=20, spread=0.03)
    view.close()


def test_dataset_series_hide_and_keys_move(browser, over, tmp_path):
    logit, through = over
    view = Opened(browser, logit.to_html(tmp_path / "d.html", others=[through]))
    page = view.page
    # A series can be hidden from the legend.
    page.locator('.legend input[data-series="1"]').uncheck()
    assert page.locator("path.line").count() == 3 and page.locator("table.readout tbody").count() == 3
    # Keyboard: the chart takes focus, the arrows move the readout's row.
    page.focus("svg.plot")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    assert page.locator(".details .where b").inner_text() == f"row {logit.row_labels[1]}"
    view.close()


# ---- prune ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned(tiny):
    return probes.compare_pruned(tiny, "ROMEO:", ["odd", "0"], max_new_tokens=12, evaluate=False)


def test_prune_page_aligns_the_runs(tiny, pruned, tmp_path):
    from probes.tokens import show_token

    page = pruned.to_html(tmp_path / "p.html").read_text(encoding="utf-8")
    assert not fetches(page)
    view = embedded(page)
    d = pruned.as_dict()
    assert [r["name"] for r in view["runs"]] == ["full model", "skip odd", "skip 0"]
    for row, run in zip(view["runs"], d["runs"]):
        sample = run["samples"][0]
        assert sample["str_tokens"] == [tiny.tokenizer.decode([t]) for t in sample["tokens"]]
        assert [view["vocab"][i] for i in row["tokens"]] == [show_token(s) for s in sample["str_tokens"]]
        assert row["kl"] == run["kl_per_token"]  # the result's numbers, unrounded
        assert row["agree"] == run["top1_agreement_per_token"]
        full = d["runs"][0]["samples"][0]["tokens"]
        first = next((t for t, (a, b) in enumerate(zip(full, sample["tokens"])) if a != b), None)
        assert row["diverge"] == first
    assert view["runs"][0]["kl"] == pytest.approx([0.0] * 12, abs=1e-5)  # the full model against itself


def test_prune_kl_per_token_is_on_the_full_prefix(tiny, pruned):
    """The per-token KL: the pruned model reading the FULL continuation (teacher-forced) against the full
    model, position by position, computed here through the runner and core.stats."""
    import torch

    from probes.core import stats
    from probes.core.runner import runner_for

    ids = pruned.prompt_tokens + pruned.runs[0].samples[0].tokens
    P = len(pruned.prompt_tokens)
    with torch.no_grad():
        full = torch.log_softmax(runner_for(tiny).logits(torch.tensor([ids]))[0].float(), -1)
        for run in pruned.runs[1:]:
            with probes.skip(tiny, run.skipped_blocks):
                cut = torch.log_softmax(runner_for(tiny).logits(torch.tensor([ids]))[0].float(), -1)
            kl = stats.kl(full[P - 1 : -1], cut[P - 1 : -1])
            assert run.kl_per_token == pytest.approx(kl.tolist(), rel=1e-3, abs=1e-5)
            same = (full[P - 1 : -1].argmax(-1) == cut[P - 1 : -1].argmax(-1)).tolist()
            # A near tie may break the other way in another batch: as the mean's test allows, one token.
            assert sum(a != b for a, b in zip(run.top1_agreement_per_token, same, strict=True)) <= 1


def test_prune_notebook_and_cli(tiny_dir, pruned, tmp_path):
    assert pruned._repr_html_().startswith("<iframe srcdoc=")
    out = tmp_path / "prune.html"
    args = ["--model", tiny_dir, "--skip", "odd", "--max-new-tokens", "6", "--no-eval"]
    got = run_cli("prune", *args, "--html", out)
    assert got.exit_code == 0, got.output
    assert "wrote the interactive prune view" in got.stderr
    assert [r["name"] for r in embedded(out.read_text(encoding="utf-8"))["runs"]] == [
        "full model",
        "skip odd",
    ]
    for extra, message in [
        (["--html", out], "already exists; pass --force"),
        (["--html", tmp_path / "p.txt"], "ending in .html"),
    ]:
        got = run_cli("prune", *args, *extra)
        assert got.exit_code == 2 and message in got.stderr and "loading" not in got.stderr, got.output
    got = run_cli("prune", "--model", tiny_dir, "--sweep", "--html", tmp_path / "s.html")
    assert got.exit_code == 2 and "block sweep has no interactive view" in got.stderr


def test_prune_hover_shows_the_kl_and_marks_the_divergence(opener, pruned, tmp_path):
    path = pruned.to_html(tmp_path / "p.html")
    view = opener(path)
    d = pruned.as_dict()["runs"]
    for k in (1, 2):
        for t in (0, 5, 11):
            view.hover(f'.cell[data-run="{k}"][data-t="{t}"]')
            assert view.text(".details .where b") == f"token {t + 1}"
            for i in (1, 2):
                row = f'table.runs tr[data-run="{i}"]'
                shown = float(view.text(f"{row} td.kl"))
                assert shown == pytest.approx(d[i]["kl_per_token"][t], rel=5e-4, abs=1e-6)
                agree = d[i]["top1_agreement_per_token"][t]
                assert view.text(f"{row} td.agree") == ("same" if agree else "other")
    marked = view.evaluate(
        "[...document.querySelectorAll('.cell.diverge')].map(c => [+c.dataset.run, +c.dataset.t])"
    )
    runs = embedded(path.read_text(encoding="utf-8"))["runs"]
    assert sorted(marked) == sorted(
        [k, r["diverge"]] for k, r in enumerate(runs) if k and r["diverge"] is not None
    )
    # Colours: each run's tokens by its own KL, so the two skip runs' rows differ.
    colours = lambda k: view.evaluate(
        f"[...document.querySelectorAll('.cell[data-run=\"{k}\"]')].map(c => c.style.backgroundColor)"
    )
    assert colours(1) != colours(2) and len(set(colours(1))) > 3
    # The metric switch: coloured by top-1 agreement, two colours only, and a legend of its own.
    kl_colours = colours(1)
    view.check('input[name="metric"][value="agree"]')
    assert colours(1) != kl_colours and len(set(colours(1))) <= 2
    assert view.text(".legend .label") == "top-1 on the same prefix"
    not_blank(view.screenshot(), colours=20, spread=0.03)
    view.close()


def test_prune_keys_move(browser, pruned, tmp_path):
    view = Opened(browser, pruned.to_html(tmp_path / "p.html"))
    page = view.page
    page.locator('.cell[data-run="1"][data-t="0"]').focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("[document.activeElement.dataset.run, document.activeElement.dataset.t]") == [
        "2",
        "1",
    ]
    view.close()


# ---- the report ----------------------------------------------------------------------------------------


def test_the_report_page_frames_its_views(browser, tiny, tmp_path):
    from probes.report import build_report

    out = tmp_path / "study"
    build_report(tiny, out, evaluate=False, max_new_tokens=4, num_samples=1)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    messages, requests = [], []
    page.on("console", lambda m: messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: messages.append(("pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((out / "index.html").resolve().as_uri())
    frames = page.locator("iframe")
    assert frames.count() == 4
    for i in range(4):
        frames.nth(i).scroll_into_view_if_needed()  # the frames load lazily
        inner = page.frame_locator("iframe").nth(i)
        inner.locator("html[data-ready]").wait_for(timeout=10_000)
        assert inner.locator(".cell").count() > 0
    # Only the report's own files were read: the page, its figures and its views.
    names = {u.rsplit("/", 1)[1] for u in requests}
    assert all(u.startswith(out.resolve().as_uri() + "/") for u in requests)
    assert {f"view_{v}.html" for v in ("prune", "lens", "lens_generation", "lens_skip_odd")} <= names
    assert [m for m in messages if m[0] in ("error", "pageerror", "warning")] == []
    page.close()


def test_a_disk_that_refuses_the_page_is_one_line(pruned, tmp_path, monkeypatch):
    import errno

    import probes.io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(probes.io, "write_text", full)
    with pytest.raises(ProbesError, match=r"cannot write the view to .*p\.html: No space left on device"):
        pruned.to_html(tmp_path / "p.html")


@pytest.mark.parametrize("which", ["dataset", "prune"])
def test_the_notebook_frames_run(browser, over, pruned, which):
    result = over[0] if which == "dataset" else pruned
    page, frame, errors = in_notebook_frame(browser, result)
    assert frame.locator("path.line" if which == "dataset" else ".cell.tok").count() > 0
    assert errors == []
    page.close()
