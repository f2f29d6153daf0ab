"""The report: its sections on hand-made results (no model), its Markdown and HTML, and the whole build on the
tiny checkpoint."""

from __future__ import annotations

import json
import math
import os
import re
from types import SimpleNamespace as NS

import numpy as np
import pytest
from typer.testing import CliRunner

from probes.cli.app import app
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError
from probes.report import REPORT_SAMPLING, build_report, check_report_args, check_report_dir
from probes.report import sections as sec
from probes.report.build import MANIFEST
from probes.report.markdown import escape, fence, figure_names, fmt, md_table, quote, to_html, tok

SECTIONS = (
    "## 1. The model",
    "## 2. Sampling",
    "## 3. The embedding",
    "## 4. Skipping blocks",
    "## 5. The logit lens",
    "## 6. How to reproduce",
)


def _nan_free(text: str) -> bool:
    """No NaN or None in the prose and tables (generated text and tokens may hold any word)."""
    prose = re.sub(r"`+[^`]*`+", "", re.sub(r"^(`{3,}).*?^\1$", "", text, flags=re.S | re.M))
    return not re.search(r"\b(nan|NaN|None)\b", prose)


# ---------------------------------------------------------------- Markdown pieces


def test_numbers_a_run_cannot_have_read_n_a():
    assert fmt(0.12345, ".2f") == "0.12" and fmt(0.5, ".0%") == "50%" and fmt(1234567, ",") == "1,234,567"
    assert fmt(None, ".2f") == fmt(float("nan"), ".1%") == fmt(np.float32("nan"), ".3f") == "n/a"
    assert fmt(math.inf, ".1f") == "inf"  # a real value, shown as one


def test_tokens_go_through_the_one_formatter_as_inline_code():
    assert tok(" the") == "`␣the`"
    assert tok("\n\n") == "`\\n\\n`"
    assert tok("") == "`''`"
    # Code spans have no escapes: a backtick inside gets a longer fence, and still renders as itself.
    assert tok("`") == "`` ` ``" and tok("a``b") == "```a``b```"
    for t in ("`", " `x", "a``b"):
        html = to_html(tok(t))
        assert re.search(r"<code>(.*)</code>", html).group(1) == t.replace(" ", "␣")


def test_md_table_formats_cells():
    lines = md_table(["name", "value", "tokens"], [["a", 0.123456, tok(" |")], ["b", None, 7]])
    assert lines[:2] == ["| name | value | tokens |", "|---|---|---|"]
    assert lines[2] == "| a | 0.1235 | `␣\\|` |"  # 4 significant digits; a pipe cannot end the cell
    assert lines[3] == "| b | n/a | 7 |"
    html = to_html("\n".join(lines))
    assert html.count("<tr>") == 3 and "<td><code>␣|</code></td>" in html


def test_quote_and_fence_hold_any_text():
    assert quote("ROMEO: hi") == ["```text", "ROMEO: hi", "```"]
    assert quote("x" * 10, limit=4) == ["```text", "xxxx …", "```"]
    lines = fence("a ``` b")
    assert lines[0] == "````" and lines[-1] == "````"
    assert "<pre><code>a ``` b\n</code></pre>" in to_html("\n".join(lines))


def test_to_html_renders_bold_code_tables_and_images():
    md = "\n".join(
        [
            "# Title",
            "",
            "Some **bold** and `code` and a_b_c <script>x</script>.",
            "",
            *md_table(["a", "b"], [[1, 2.5]]),
            "",
            "![a caption](fig.png)",
            "",
        ]
    )
    html = to_html(md)
    assert (
        html.startswith("<!doctype html>")
        and "<meta charset=utf-8>" in html
        and "<title>probes report</title>" in html
    )
    assert "img { max-width: 100%; }" in html
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<table>" in html and "<th>a</th>" in html and "<td>2.5</td>" in html
    assert '<img src="fig.png" alt="a caption" />' in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # raw HTML is shown, never run
    assert "**" not in html and "`" not in html


def test_user_text_is_escaped_in_prose():
    html = to_html(f"Prompt {escape(repr('a_b_c *x* [y](z) <b>'))}.")
    assert "<em>" not in html and "<a " not in html and "<b>" not in html
    assert "a_b_c *x* [y](z) &lt;b&gt;" in html


# ---------------------------------------------------------------- sections, on hand-made results


def _setting(t, k, tokens, probs, entropy, n99, support):
    return NS(
        config=SamplingConfig(temperature=t, top_k=k),
        top_str_tokens=tokens,
        top_probs=probs,
        entropy=entropy,
        tokens_for_99=n99,
        support=support,
        top1_prob=probs[0],
    )


def _dist():
    raw = _setting(1.0, None, [" the", "\n"], [0.3, 0.2], 5.9123, 3772, 8192)
    return NS(
        raw=raw,
        d_vocab=8192,
        settings=[
            _setting(0.8, 200, [" the", "\n"], [0.38, 0.2], 3.3, 124, 200),
            _setting(0.1, None, [" the", "\n"], [0.832, 0.1], 0.6531, 2, 8192),
            _setting(10.0, None, [" the", "\n"], [0.0004, 0.0003], 12.97, 8069, 8192),
            _setting(10.0, 2, ["\n", " "], [0.504, 0.496], 1.0, 2, 2),
        ],
    )


def _samples(*token_lists):
    return [NS(text=" x" * len(t), tokens=list(t)) for t in token_lists]


def test_sampling_section():
    cfg = SamplingConfig(max_new_tokens=7, num_samples=1, seed=5)
    samples = [
        _samples([1, 2, 1, 2]),
        _samples([1, 2, 3, 1, 2, 3, 1]),
        _samples([1, 2, 3]),
        _samples([4, 5, 6]),
    ]
    lines = sec.sampling_section("ROMEO:", cfg, _dist(), samples)
    text = "\n".join(lines)
    assert lines[0] == "## 2. Sampling: temperature and top-k"
    assert "Prompt 'ROMEO:', 1 samples of 7 tokens per setting, seed 5." in text
    assert "### T=0.8, top-k=200" in lines and "### T=10, top-k=2" in lines
    assert (
        "| setting | entropy (nats) | tokens for 99% mass | top-1 prob | distinct-2 | repeated 4-grams |"
        in lines
    )
    # [1,2,1,2]: 2 distinct of 3 bigrams; [1,2,3,1,2,3,1]: 3 of 6 bigrams, 1 of 4 4-grams repeats
    assert "| T=0.8, top-k=200 | 3.3 | 124 | 0.38 | 0.6667 | 0 |" in lines
    assert "| T=0.1 | 0.6531 | 2 | 0.832 | 0.5 | 0.25 |" in lines
    assert "At T=1 with no truncation the next-token distribution has 5.91 nats" in text
    assert "At T=0.1 the top token `␣the` carries 83.2% of the mass (0.65 nats)" in text
    assert "multiplies their gaps by 10." in text
    assert "only 2 tokens remain possible with p ≥ 1e-06 (`\\n` 50.4%, `␣` 49.6%)" in text
    assert "distinct-2 ratios go from 0.50 (T=0.1) to 1.00 (T=10) and 1.00 (T=10, top-k 2)." in text
    assert ["```text", "ROMEO: x x x x", "```"] == lines[
        lines.index("Sample 1:") + 2 : lines.index("Sample 1:") + 5
    ]
    assert figure_names(lines) == ["next_token.png"]


def test_sampling_section_on_one_token_samples_says_n_a():
    cfg = SamplingConfig(max_new_tokens=1, num_samples=2)
    lines = sec.sampling_section("ROMEO:", cfg, _dist(), [_samples([1], [2])] * 4)
    text = "\n".join(lines)
    assert "| T=0.1 | 0.6531 | 2 | 0.832 | n/a | n/a |" in lines
    assert "distinct-2 ratios go from n/a (T=0.1) to n/a (T=10)" in text
    assert _nan_free(text)


def _word(word, group, tokens, used, norm, pct, neighbours):
    return {
        "word": word,
        "group": group,
        "str_tokens": tokens,
        "used_str_tokens": used,
        "ids": [68],
        "norm": norm,
        "norm_percentile": pct,
        "neighbours": [{"token": t} for t in neighbours],
    }


def test_embeddings_section():
    comparison = {
        "mean_norm_common": 0.35941,
        "mean_norm_rare": 0.3852,
        "norm_ratio": None,
        "mean_norm_percentile_common": 55.2,
        "mean_norm_percentile_rare": 70.0,
        "mean_cosine_common": 0.2124,
        "mean_cosine_rare": float("nan"),
        "mean_cross_cosine": -0.00001,
        "split_common": 1,
        "n_common": 1,
        "split_rare": 0,
        "n_rare": 1,
    }
    emb = {
        "token_form": "space",
        "token_form_means": "word with a leading space",
        "words": [
            _word("dog", "common", ["d", "og"], [" dog"], 0.372749, 64.6, [" cat", "\n", "x", "y"]),
            _word("a|b", "rare", ["a|b"], [" a"], 0.4, 80.0, []),
        ],
        "summary": {"comparison": comparison},
        "pca": {"explained_variance": [0.5371, 0.0251]},
        "cross_cosine": {"rows": "common", "columns": "rare", "matrix": [[-0.0001]], "mean": -0.0001},
    }
    lines = sec.embeddings_section(emb)
    text = "\n".join(lines)
    assert "Token form `space`" in text and "--token-form first` gives the classic" in text
    assert "| word | group | tokens used (space) | ids | norm | norm pct | bare word | nearest |" in lines
    assert "| dog | common | `␣dog` | 68 | 0.3727 | 65 | `d` `og` | `␣cat`, `\\n`, `x` |" in lines
    assert "| a\\|b | rare | `␣a` |" in text  # the word escaped as prose, the token as code
    assert "common 0.3594 (mean percentile 55), rare 0.3852" in text
    assert "common/rare ratio n/a." in text and "rare n/a;" in text
    assert "between a common and a rare word 0.000." in text and "| dog | 0.00 |" in lines  # never -0.000
    assert "1 of 1 common and 0 of 1 rare words are several tokens" in text
    assert "(53.7% and 2.5% of the variance)" in text
    assert figure_names(lines) == [
        "embed_norms.png",
        "embed_cosine.png",
        "embed_scatter.png",
        "embed_pca.png",
    ]
    html = to_html(text)
    assert "<td>a|b</td>" in html and "<code>␣a</code>" in html
    # Without both groups there is no comparison to state, and no crash.
    one = {**emb, "summary": {"comparison": None}, "cross_cosine": None}
    assert "Mean L2 norm" not in "\n".join(sec.embeddings_section(one))


def _metrics(**kw):
    base = dict(
        distinct_2=0.7458,
        repeated_4gram_fraction=0.1053,
        longest_repeated_span=7,
        ppl_under_full=3.44,
        tf_kl=0.0,
        tf_top1_agreement=1.0,
        eval_loss=4.044,
        eval_loss_increase=0.0,
        tokens_per_second=None,
    )
    return {**base, **kw}


def _sweep():
    blocks = [
        {
            "block": i,
            "loss_increase": inc,
            "kl": 0.2,
            "top1_agreement": 0.7,
            "block_influence": 0.05,
            "angular_distance": 0.1,
        }
        for i, inc in enumerate([0.1, 0.5, -0.001])
    ]
    strategies = [
        {
            "name": "odd",
            "skipped_blocks": [1],
            "loss": 4.5,
            "loss_increase": 0.5,
            "kl": 0.7,
            "top1_agreement": 0.4,
        },
        {
            "name": "even",
            "skipped_blocks": [0, 2],
            "loss": 4.2,
            "loss_increase": 0.2,
            "kl": 0.3,
            "top1_agreement": 0.6,
        },
    ]
    return NS(
        blocks=blocks,
        strategies=strategies,
        ranked=lambda: sorted(blocks, key=lambda b: -b["loss_increase"]),
        eval_text="heldout.txt",
        eval_tokens=1020,
    )


def test_prune_section():
    runs = [
        NS(name="full", skipped_blocks=[], samples=_samples([1, 2]), metrics=_metrics()),
        NS(
            name="odd",
            skipped_blocks=[1, 3],
            samples=_samples([1]),
            metrics=_metrics(
                distinct_2=0.3051,
                repeated_4gram_fraction=0.5789,
                tf_top1_agreement=0.55,
                tf_kl=0.6158,
                eval_loss=4.746,
                ppl_under_full=13.17,
            ),
        ),
    ]
    comp = NS(config=SamplingConfig(greedy=True, max_new_tokens=60), eval_text="/x/heldout.txt", runs=runs)
    lines = sec.prune_section("ROMEO:", comp, _sweep())
    text = "\n".join(lines)
    assert "Greedy continuations of 'ROMEO:' (60 tokens)" in text and "measured on `/x/heldout.txt`." in text
    assert "**Full model**" in lines and "**Skip odd (blocks 1, 3)**" in lines
    assert "| metric | full | odd |" in lines
    assert "| distinct-2 | 0.7458 | 0.3051 |" in lines
    assert "| KL(full\\|\\|run) on full text (nats) | 0 | 0.6158 |" in lines
    assert not any("tokens / s" in line for line in lines)  # one cold run is no speed measurement
    assert (
        "Skipping odd raised the held-out loss from 4.044 to 4.746 nats/token; on the full model's own "
        "continuation its top-1 prediction agreed 55% of the time (mean KL 0.616 nats). Its text's "
        "distinct-2 was 0.31 (lower than the full model's 0.75), with 58% repeated 4-grams against 11%, and "
        "the full model scores it at perplexity 13.2 against 3.4 for its own text."
    ) in text
    assert (
        "Skipped alone, block 1 raises the held-out loss the most (+0.500 nats/token); skipping block 2 "
        "changes it by -0.001 nats/token (lower): the model does better on this text without that block."
    ) in text
    assert "costs" not in text and "+-" not in text and "| block | loss change |" in text
    assert (
        "Each block skipped alone, scored on `heldout.txt` (1,020 tokens): the report scores at most 512 "
        "tokens of a text"
    ) in text  # what it scored
    assert "| even | 0,2 | 4.2 | 0.2 | 0.3 | 0.6 |" in lines
    assert "skipping even keeps the held-out loss lowest (4.200)." in text
    assert figure_names(lines) == ["prune.png", "sweep.png"]


def test_prune_section_on_short_runs_says_n_a():
    short = _metrics(distinct_2=None, repeated_4gram_fraction=None, ppl_under_full=float("nan"))
    runs = [
        NS(name="full", skipped_blocks=[], samples=_samples([1]), metrics=short),
        NS(name="odd", skipped_blocks=[1], samples=_samples([2]), metrics=short),
    ]
    comp = NS(config=SamplingConfig(greedy=True, max_new_tokens=1), eval_text="e.txt", runs=runs)
    text = "\n".join(sec.prune_section("ROMEO:", comp, _sweep()))
    assert "| distinct-2 | n/a | n/a |" in text
    assert "distinct-2 was n/a (not comparable with the full model's n/a), with n/a repeated 4-grams" in text
    assert "perplexity n/a against n/a" in text
    assert _nan_free(text)


def _lens():
    kl = np.array([[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)  # (rows, pos)
    ent = np.array([[4.0, 4.0], [3.0, 3.0], [2.0, 2.0]], dtype=np.float32)
    return NS(row_labels=["embed", "0", "1"], kl_to_final=kl, entropy=ent, n_rows=3)


def test_lens_section():
    lines = sec.lens_section("ROMEO:", "JULIET: hi", _lens(), NS(emergence=[2, None, 1, 2]))
    text = "\n".join(lines)
    assert "Prompt 'JULIET: hi'." in text
    assert "| row | mean entropy (nats) | mean KL to final (nats) |" in lines
    assert "| embed | 4 | 2 |" in lines and "| 1 | 2 | 0 |" in lines
    assert (
        "Mean KL to the final distribution falls from 2.00 nats at the first row to 1.00 at the row before "
        "last; mean entropy goes from 4.00 to 2.00 nats."
    ) in text
    # rows 2, 1, 2 are "after block 1", "after block 0", "after block 1": mean 0.7, as the figures label them
    assert (
        "Of 4 generated tokens, 3 become top-1 at some row and stay there; on average they emerge after "
        "block 0.7 (with `embed` counted as -1), and 2 appear only at the output row (after block 1)."
    ) in text
    assert figure_names(lines) == ["lens.png", "lens_generation.png", "lens_skip_odd.png"]
    none = "\n".join(sec.lens_section("ROMEO:", "JULIET: hi", _lens(), NS(emergence=[None])))
    assert "Of 1 generated tokens, none is top-1 before the output." in none


def test_model_and_reproduce_sections():
    info = {
        "name": "tiny",
        "source": "local",
        "path": "/m/tiny",
        "sha256": None,
        "n_layers": 4,
        "n_heads": 4,
        "d_model": 64,
        "d_mlp": 256,
        "d_vocab": 8192,
        "n_ctx": 64,
        "n_params": 1234567,
        "dtype": "float32",
        "device": "cpu",
    }
    lines = sec.title_section(info) + sec.model_section(info, card="/m/tiny/MODEL_CARD.md")
    assert lines[0] == "# A study of `tiny`"
    assert "| source | local (`/m/tiny`) |" in lines and "| weights sha256 | n/a |" in lines
    assert "| parameters | 1,234,567 |" in lines and "| dtype / device | float32 / cpu |" in lines
    assert "How it was trained: see its model card (`/m/tiny/MODEL_CARD.md`)." in lines
    assert not any("model card" in line for line in sec.model_section(info))
    meta = {"versions": {"probes": "0.2", "transformer-lens": "4.3", "transformers": "5.0", "torch": None}}
    lines = sec.reproduce_section("probes report --prompt '```'", meta, 7, "abc")
    assert lines[:5] == ["## 6. How to reproduce", "", "````", "probes report --prompt '```'", "````"]
    assert (
        "probes 0.2, transformer-lens 4.3, transformers 5.0, torch n/a; seed 7; weights sha256 abc." in lines
    )


def test_study_settings_keep_the_users_counts_and_seed():
    cfg = SamplingConfig(max_new_tokens=3, num_samples=4, seed=9, top_p=0.5, greedy=True)
    grid = sec.study_settings(cfg)
    assert [(c.temperature, c.top_k, c.top_p, c.is_greedy) for c in grid] == [
        (0.8, 200, None, False),
        (0.1, None, None, False),
        (10.0, None, None, False),
        (10.0, 2, None, False),
    ]
    assert {(c.max_new_tokens, c.num_samples, c.seed) for c in grid} == {(3, 4, 9)}


# ---------------------------------------------------------------- arguments, checked before a model loads


def test_report_args_are_checked_before_the_model(tmp_path):
    assert check_report_args(tmp_path / "new") == REPORT_SAMPLING
    assert REPORT_SAMPLING.max_new_tokens == 60 and REPORT_SAMPLING.num_samples == 2
    cfg = check_report_args(tmp_path / "new", max_new_tokens=3, seed=1)
    assert (cfg.max_new_tokens, cfg.num_samples, cfg.seed) == (3, 2, 1)
    assert check_report_args(tmp_path / "new", SamplingConfig(num_samples=5)).num_samples == 5
    with pytest.raises(ProbesError, match="max-new-tokens must be an integer >= 1"):
        check_report_args(tmp_path / "new", max_new_tokens=0)
    with pytest.raises(ProbesError, match="unknown sampling option"):
        check_report_args(tmp_path / "new", max_tokens=3)
    with pytest.raises(ProbesError, match="cannot read --eval-text"):
        check_report_args(tmp_path / "new", eval_text=str(tmp_path / "nowhere.txt"))
    (tmp_path / "a folder").mkdir()
    with pytest.raises(ProbesError, match="--eval-text .* is a folder; give a file"):
        check_report_args(tmp_path / "new", eval_text=str(tmp_path / "a folder"))
    with pytest.raises(ProbesError, match="--force"):
        check_report_args(tmp_path)  # not empty: it holds "a folder"


def test_build_report_refuses_bad_args_before_any_work(tmp_path):
    model = object()  # never touched: the arguments fail first
    with pytest.raises(ProbesError, match="num-samples"):
        build_report(model, tmp_path / "out", num_samples=0)
    assert list(tmp_path.iterdir()) == []


def old_report(folder, text="old"):
    """A previous report as probes writes it: report.md and the manifest that lists it."""
    folder.mkdir()
    (folder / "report.md").write_text(text)
    (folder / ".probes-report.json").write_text('{"files": ["report.md"]}')
    return folder


def test_report_replaces_only_a_previous_report(tmp_path):
    old = old_report(tmp_path / "old")
    assert check_report_dir(old, force=True) == old.resolve()
    with pytest.raises(ProbesError, match="--force"):
        check_report_dir(old, force=False)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff")
    (other / "report.md").write_text("not ours")  # a report.md alone does not make a folder ours
    with pytest.raises(ProbesError, match="not a report folder written by probes"):
        check_report_dir(other, force=True)
    (old / "notes.txt").write_text("mine")  # a report folder the user has added to
    with pytest.raises(ProbesError, match="also holds 'notes.txt'"):
        check_report_dir(old, force=True)
    (old / "notes.txt").unlink()
    (old / ".git").mkdir()
    with pytest.raises(ProbesError, match="also holds '.git'"):
        check_report_dir(old, force=True)


def test_files_added_to_the_folder_while_it_builds_are_kept(tiny, tmp_path):
    out = tmp_path / "study"

    def meddle(msg):
        if msg.startswith("[3/6]"):
            out.mkdir(exist_ok=True)
            (out / "notes.txt").write_text("mine")

    with pytest.raises(ProbesError, match="filled up while the report ran"):
        build_report(tiny, out, max_new_tokens=2, num_samples=1, progress=meddle)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and [p.name for p in tmp_path.iterdir()] == [
        "study"
    ]


def test_force_swaps_the_old_report_for_the_new_whole(tiny, tmp_path):
    out = old_report(tmp_path / "study")
    build_report(tiny, out, force=True, max_new_tokens=2, num_samples=1)
    assert (out / "report.md").read_text() != "old" and (out / ".probes-report.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["study"]  # the old one, set aside, is gone
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # an ordinary folder, not mkdtemp's 0700


def test_report_refuses_the_current_folder_and_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.md").write_text("x")
    for bad in (".", str(tmp_path.parent), os.path.expanduser("~")):
        with pytest.raises(ProbesError, match="current folder|home"):
            check_report_dir(bad, force=True)


# ---------------------------------------------------------------- the whole build on the tiny checkpoint


VIEWS = ["prune", "lens", "lens_generation", "lens_skip_odd"]  # figures shown as views in index.html


def _check_folder(out, text):
    for section in SECTIONS:
        assert section in text
    # every figure the Markdown shows is there, and every PNG is shown
    shown = set(figure_names(text.splitlines()))
    assert shown == {p.name for p in out.glob("*.png")} and len(shown) >= 9
    assert all((out / f).read_bytes()[:4] == b"\x89PNG" for f in shown)
    html = (out / "index.html").read_text()
    for tag in ("<strong>", "<code>", "<table>", "<h2>"):
        assert tag in html
    # The lens and prune figures are their interactive views in the HTML, each a file beside it.
    views = re.findall(r'<iframe src="(view_[a-z_]+\.html)"', html)
    assert sorted(views) == sorted(f"view_{v}.html" for v in VIEWS)
    assert html.count("<img ") == len(shown) - len(views)
    assert all(f'<a href="{v}.png">' in html for v in VIEWS)
    files = set(json.loads((out / MANIFEST).read_text())["files"])
    assert files == {p.name for p in out.iterdir()} - {MANIFEST}  # the manifest lists every file
    assert (
        "heldout.txt" in text or "eval-english.txt" in text
    )  # the bundled passage, or for other models the English text
    assert _nan_free(text)
    return shown


def test_an_interrupted_build_keeps_the_previous_report(tiny, tmp_path):
    out = old_report(tmp_path / "study")

    def stop(msg):
        if msg.startswith("[3/6]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_report(tiny, out, force=True, max_new_tokens=2, num_samples=1, progress=stop)
    assert [p.name for p in tmp_path.iterdir()] == ["study"]
    assert sorted(p.name for p in out.iterdir()) == [".probes-report.json", "report.md"]
    assert (out / "report.md").read_text() == "old"


def test_report_on_a_local_checkpoint(tiny_dir, tmp_path):
    # One new token: the shortest run, where distinct-n and repetition have nothing to count.
    out = tmp_path / "study"
    r = CliRunner().invoke(
        app,
        [
            "report",
            "--model",
            str(tiny_dir),
            "--out",
            str(out),
            "--max-new-tokens",
            "1",
            "--num-samples",
            "1",
            "--seed",
            "3",
            "--token-form",
            "first",
            "--words",
            "ROMEO,sorrow, night",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    steps = re.findall(r"^\[(\d)/(\d)\]", r.stderr, re.M)
    assert [a for a, _ in steps] == ["1", "2", "3", "4", "5", "6"] and {b for _, b in steps} == {"6"}
    d = json.loads(r.stdout)
    assert d["report"] == str(out.resolve() / "report.md")
    text = (out / "report.md").read_text()
    assert _check_folder(out, text) == set(d["figures"])
    assert "1 samples of 1 tokens per setting, seed 3" in text
    assert "| distinct-2 | n/a | n/a | n/a | n/a |" in text  # one token has no bigram
    assert [p.name for p in tmp_path.iterdir()] == ["study"]  # no temporary folder left behind
    # #27 item 9: the report as a student hands it in
    assert "Token form `first`" in text and "| ROMEO |" in text  # --token-form and --words
    assert "Cosine similarity within the words group:" in text  # the cosines as a table, not only a figure
    assert "The defaults suit " in text and "fit the model: a" not in text
    html = (out / "index.html").read_text()
    assert "components of <code>wte</code>" in html and "`wte`" not in html  # a caption's code renders
