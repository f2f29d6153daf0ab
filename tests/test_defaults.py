"""Defaults that fit the model: Shakespeare for the bundled model, the classic prompts and an English text for
GPT-2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probes.cli.common import eval_choice
from probes.studies.defaults import (
    BUNDLED_EVAL,
    CLASSIC_PROMPT,
    CLASSIC_PRUNE_PROMPT,
    ENGLISH_EVAL,
    defaults_for_name,
    study_defaults,
)
from tests.cli_runner import run_cli


def test_defaults_by_model(tmp_path):
    assert defaults_for_name(None).prompt == "ROMEO:" and defaults_for_name(None).eval_path == BUNDLED_EVAL
    gpt2 = defaults_for_name("gpt2")
    assert (gpt2.prompt, gpt2.prune_prompt, gpt2.lens_prompt) == (
        CLASSIC_PROMPT,
        CLASSIC_PRUNE_PROMPT,
        CLASSIC_PROMPT,
    )
    assert gpt2.eval_path == ENGLISH_EVAL and "GPT-2" in gpt2.why
    (tmp_path / "heldout.txt").write_text("my own text")
    own = study_defaults(False, tmp_path)
    assert own.eval_path == tmp_path / "heldout.txt" and own.prompt == CLASSIC_PROMPT


def test_english_text_is_bundled_with_its_source():
    text = ENGLISH_EVAL.read_text(encoding="utf-8")
    assert text.startswith("CHAPTER I. Down the Rabbit-Hole") and len(text.split()) > 2000
    note = (ENGLISH_EVAL.parent / "eval-english.SOURCE.md").read_text()
    assert "public domain" in note and "Project Gutenberg eBook #11" in note and "wordcloud==1.9.6" in note


def test_defaults_need_no_torch():
    code = (
        "import sys; from probes.studies.defaults import defaults_for_name; "
        "from probes.cli.common import eval_choice; "
        "defaults_for_name('gpt2'); eval_choice(None); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(evaluate=False, eval_text="x.txt"), "--no-eval turns held-out scoring off; --eval-text"),
        (dict(eval_text="x.txt", dataset="y.txt"), "either --eval-text"),
        (dict(max_texts=3), "give --dataset"),
    ],
)
def test_eval_choice_refuses_conflicts(kwargs, message):
    from probes.errors import ProbesError

    with pytest.raises(ProbesError, match=message):
        eval_choice(**kwargs)


def test_help_says_which_default_is_whose():
    for cmd in ("prune", "report"):
        r = run_cli(cmd, "--help")
        text = " ".join(r.stdout.replace("│", " ").split())  # the help box wraps lines between borders
        assert "'ROMEO:' for the bundled model" in text and "for others" in text, cmd


def test_prune_on_gpt2_uses_the_classic_prompt_and_english_text(offline_gpt2):
    r = run_cli("prune", "--model", "gpt2", "--max-new-tokens", "3", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["prompt"] == CLASSIC_PRUNE_PROMPT and d["eval_text"] == str(ENGLISH_EVAL)
    assert (
        d["eval_tokens"] == 2048
    )  # the text's first 2,048 tokens, each predicted (every window starts with BOS)
    r = run_cli("prune", "--model", "gpt2", "--max-new-tokens", "3", "--no-eval", "--json")
    d = json.loads(r.stdout)
    assert d["eval_text"] is None and d["runs"][1]["metrics"]["eval_loss"] is None


def test_prune_on_the_bundled_model_keeps_shakespeare(bundled):
    r = run_cli("prune", "--max-new-tokens", "2", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["prompt"] == "ROMEO:" and d["eval_text"] == str(BUNDLED_EVAL)


def test_report_on_gpt2_says_which_prompts_and_text_and_why(offline_gpt2, tmp_path):
    r = run_cli(
        "report", "--model", "gpt2", "--out", tmp_path / "r", "--max-new-tokens", "3", "--num-samples", "1"
    )
    assert r.exit_code == 0, r.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"sampling prompt '{CLASSIC_PROMPT}' (default)" in text
    assert f"pruning prompt '{CLASSIC_PRUNE_PROMPT}' (default)" in text
    assert "eval-english.txt" in text and "a GPT-2-family model: the classic study's prompts" in text
    assert "ROMEO" not in text and "JULIET" not in text
    assert "sweep.png" in text


def test_report_no_eval_keeps_every_section(offline_gpt2, tmp_path):
    r = run_cli(
        "report",
        "--model",
        "gpt2",
        "--out",
        tmp_path / "r",
        "--max-new-tokens",
        "3",
        "--num-samples",
        "1",
        "--no-eval",
    )
    assert r.exit_code == 0, r.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    for heading in (
        "## 1. The model",
        "## 2. Sampling",
        "## 3. The embedding matrix",
        "## 4. Skipping blocks",
        "### Which blocks matter",
        "## 5. The logit lens",
        "## 6. How to reproduce",
    ):
        assert heading in text
    assert "scoring was off (`--no-eval`)" in text and "held-out loss (nats)" not in text
    assert not (tmp_path / "r" / "sweep.png").exists() and (tmp_path / "r" / "prune.png").exists()


def test_the_reports_sweep_scores_whole_windows_within_its_budget():
    from probes.studies.defaults import REPORT_SWEEP_TOKENS, report_sweep_tokens

    assert report_sweep_tokens(1024) == 512  # GPT-2: half a context window
    assert report_sweep_tokens(256) == 510  # the bundled model: two windows of 255 tokens
    assert report_sweep_tokens(2048) == 512
    for n_ctx in (16, 64, 256, 1024):
        t = report_sweep_tokens(n_ctx)
        assert t <= REPORT_SWEEP_TOKENS and (t % (n_ctx - 1) == 0 or t == REPORT_SWEEP_TOKENS)
