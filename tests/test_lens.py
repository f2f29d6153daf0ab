"""Logit lens: row L is the model's output, every row matches transformers' hidden states decoded
independently, skipped blocks repeat the row before, the generation lens equals the lens of the
generated sequence, hooks are left as found, and the CLI's outputs and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_runner import run_cli

import probes
import probes.cli.app
from probes.core.hooks import attached
from probes.core.prompt import encode
from probes.core.state import hook_count
from probes.errors import SpecError
from probes.studies.lens.generation import generation_lens
from probes.studies.lens.logit import emergence_rows, logit_lens, row_hooks
from probes.tokens import show_token

PROMPT = "JULIET: Good night, good night! Parting is such sweet sorrow"


def hf_lens(hf, ids: list[int]):
    """Per row: log-probs (pos, vocab) from transformers' hidden states, decoded by ln_f and lm_head."""
    with torch.no_grad():
        out = hf(torch.tensor([ids], device=hf.device), output_hidden_states=True)
        hs = out.hidden_states  # L+1 of (1, pos, d_model); the last already went through ln_f
        rows = [hf.lm_head(hf.transformer.ln_f(h[0])) for h in hs[:-1]] + [hf.lm_head(hs[-1][0])]
        assert torch.allclose(rows[-1], out.logits[0], atol=1e-5)
    return [r.double().log_softmax(-1) for r in rows]


def check_against_hf(model, hf, ids):
    lens = logit_lens(model, ids)
    ref = hf_lens(hf, ids)
    assert len(ref) == lens.n_rows == model.cfg.n_layers + 1
    final = ref[-1]
    for r, logp in enumerate(ref):
        p = logp.exp()
        entropy = -(p * logp).sum(-1)  # (pos,) nats
        kl = (final.exp() * (final - logp)).sum(-1)
        assert lens.top_ids[r, :, 0].tolist() == logp.argmax(-1).tolist(), f"row {r} top-1"
        np.testing.assert_allclose(lens.entropy[r], entropy.cpu().numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(lens.kl_to_final[r], kl.cpu().numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(
            lens.top_probs[r], p.topk(lens.top_ids.shape[-1]).values.cpu().numpy(), atol=1e-5, rtol=0
        )
        nxt = torch.tensor(ids[1:], device=logp.device)
        xent = -logp[:-1].gather(-1, nxt[:, None])[:, 0]
        np.testing.assert_allclose(lens.next_xent[r, :-1], xent.cpu().numpy(), atol=1e-4, rtol=0)
    return lens


def test_matches_transformers_hidden_states_on_tiny(tiny, tiny_hf):
    assert tiny.cfg.n_layers == 4  # random LayerNorm parameters: a folding mistake would show
    ids = encode(tiny, PROMPT)
    lens = check_against_hf(tiny, tiny_hf, ids)
    assert lens.kl_to_final[0].mean() > 0.1  # the rows really differ, so the check has teeth


@pytest.mark.slow
def test_matches_transformers_hidden_states_on_bundled(bundled, bundled_hf):
    ids = encode(bundled, PROMPT)
    lens = check_against_hf(bundled, bundled_hf, ids)
    # The trained model's prediction forms with depth: closer to the output, more of its top token.
    assert lens.kl_to_final[-2].mean() < lens.kl_to_final[0].mean()
    assert lens.final_prob[-2].mean() > lens.final_prob[0].mean()


def test_final_row_is_the_models_output(tiny):
    ids = encode(tiny, PROMPT)
    lens = logit_lens(tiny, ids, top=3)
    with torch.no_grad():
        logp = tiny(torch.tensor([ids], device=tiny.cfg.device)).log_softmax(-1)[0].cpu()  # (pos, vocab)
    p = logp.exp()
    assert lens.final_token.tolist() == logp.argmax(-1).tolist()
    np.testing.assert_allclose(lens.top_probs[-1], p.topk(3).values.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(lens.entropy[-1], (-(p * logp).sum(-1)).numpy(), atol=1e-5, rtol=0)
    assert (lens.kl_to_final[-1] == 0).all() and (lens.final_rank[-1] == 1).all()
    np.testing.assert_allclose(lens.final_prob[-1], lens.top_probs[-1, :, 0], atol=1e-7)


def test_positions_subset_equals_the_full_lens(tiny):
    full = logit_lens(tiny, PROMPT)
    some = logit_lens(tiny, PROMPT, positions=[-1, 2, 0])
    assert some.positions == [0, 2, len(full.tokens) - 1]
    for name in ("top_ids", "entropy", "kl_to_final", "final_rank", "next_rank"):
        np.testing.assert_allclose(
            getattr(some, name), getattr(full, name)[:, some.positions], atol=1e-5, err_msg=name
        )
    assert some.next_rank[:, -1].tolist() == [-1] * some.n_rows and np.isnan(some.next_xent[:, -1]).all()
    with pytest.raises(SpecError, match="was not decoded"):
        some.table(1)
    with pytest.raises(SpecError, match="out of range"):
        logit_lens(tiny, PROMPT, positions=[99])


def test_table_rows(tiny):
    lens = logit_lens(tiny, PROMPT, top=4)
    t = lens.table(3)
    assert [r["hook"] for r in t] == row_hooks(4) and [r["row"] for r in t] == ["embed", "0", "1", "2", "3"]
    assert all(len(r["top"]) == 4 for r in t) and t[-1]["kl_to_final"] == 0
    assert t[0]["next_rank"] == int(lens.next_rank[0, 3])
    assert lens.table(-1)[0]["next_rank"] is None
    with pytest.raises(SpecError, match="out of range"):
        lens.table(len(lens.tokens))


def test_inside_skip_a_skipped_row_repeats_the_previous(tiny):
    ids = encode(tiny, PROMPT)
    with probes.skip(tiny, "1,2"):
        lens = logit_lens(tiny, ids)
        with torch.no_grad():
            logp = tiny(torch.tensor([ids], device=tiny.cfg.device)).log_softmax(-1)[0].cpu()
    assert lens.skipped_blocks == [1, 2] and lens.row_labels == [
        "embed",
        "0",
        "1 (skipped)",
        "2 (skipped)",
        "3",
    ]
    # Row i+1 is the output of block i: blocks 1 and 2 pass row 1 through unchanged.
    for name in ("top_ids", "top_probs", "entropy", "kl_to_final"):
        a = getattr(lens, name)
        np.testing.assert_array_equal(a[2], a[1], err_msg=name)
        np.testing.assert_array_equal(a[3], a[1], err_msg=name)
    assert not np.array_equal(lens.entropy[4], lens.entropy[3])
    assert lens.final_token.tolist() == logp.argmax(-1).tolist()  # row L is the pruned model's output
    np.testing.assert_allclose(lens.entropy[-1], (-(logp.exp() * logp).sum(-1)).numpy(), atol=1e-5)
    full = logit_lens(tiny, ids)
    np.testing.assert_allclose(lens.entropy[:2], full.entropy[:2], atol=1e-6)  # before the first skip


@pytest.mark.parametrize("fast", [True, False])  # the fused decoder's streams, or hooks on the bridge
@pytest.mark.parametrize("skip", [None, "odd"])
def test_generation_lens_equals_the_lens_of_the_generated_sequence(tiny, skip, fast, monkeypatch):
    from probes.core.runner import runner_for

    monkeypatch.setenv("PROBES_FAST_PATH", "1" if fast else "0")
    assert runner_for(tiny).kind == ("fused" if fast else "hooked")
    with probes.skip(tiny, skip):
        gen = generation_lens(tiny, "ROMEO:", max_new_tokens=8, temperature=1.0, seed=3)
        full = logit_lens(tiny, gen.lens.tokens, positions=gen.lens.positions)
    n_prompt = len(gen.prompt_tokens)
    assert len(gen.generated) == 8 and gen.lens.positions == list(range(n_prompt - 1, n_prompt + 7))
    assert gen.lens.next_token.tolist() == gen.generated
    np.testing.assert_allclose(gen.prob, full.next_prob, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gen.lens.entropy, full.entropy, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gen.lens.kl_to_final, full.kl_to_final, atol=1e-4, rtol=0)
    assert (gen.lens.top_ids[..., 0] == full.top_ids[..., 0]).mean() > 0.95  # near-ties may flip
    assert gen.emergence == emergence_rows(gen.rank)


def test_greedy_generation_tokens_are_top_1_in_the_last_row(tiny):
    gen = generation_lens(tiny, "ROMEO:", max_new_tokens=6, greedy=True)
    assert (gen.rank[-1] == 1).all()
    assert all(
        e is not None and (gen.rank[e:, j] == 1).all() and (e == 0 or gen.rank[e - 1, j] != 1)
        for j, e in enumerate(gen.emergence)
    )
    d = gen.as_dict()
    assert d["generation"]["tokens"] == gen.generated and len(d["generation"]["emergence_row"]) == 6


def test_generation_lens_past_the_context(tiny):
    """Once the window slides, the newest position is still the one recorded."""
    text = " night" * (tiny.cfg.n_ctx - 2)
    assert len(encode(tiny, text, bos=False)) == tiny.cfg.n_ctx - 2
    gen = generation_lens(tiny, text, max_new_tokens=5, greedy=True, bos=False)
    assert len(gen.lens.tokens) > tiny.cfg.n_ctx and len(gen.generated) == 5
    assert (gen.rank[-1] == 1).all()  # greedy: each token is the final row's top-1 where it was drawn


def test_emergence_rows():
    ranks = np.array([[5, 1, 1, -1], [1, 2, 1, -1], [1, 1, 1, -1]])  # (rows, pos)
    assert emergence_rows(ranks) == [1, 2, 0, None]
    assert emergence_rows(np.array([[1], [3]])) == [None]


def test_hooks_are_left_as_found(tiny):
    before = hook_count(tiny)
    logit_lens(tiny, PROMPT)
    generation_lens(tiny, "ROMEO:", max_new_tokens=3)
    assert hook_count(tiny) == before

    def boom(t, hook):
        raise RuntimeError("boom")

    with attached(tiny, [("blocks.2.hook_resid_pre", boom)]):
        inside = hook_count(tiny)
        with pytest.raises(RuntimeError, match="boom"):
            logit_lens(tiny, PROMPT)
        with pytest.raises(RuntimeError, match="boom"):
            generation_lens(tiny, "ROMEO:", max_new_tokens=3)
        assert hook_count(tiny) == inside
    assert hook_count(tiny) == before


def test_bad_arguments(tiny):
    with pytest.raises(SpecError, match="top"):
        logit_lens(tiny, PROMPT, top=0)
    with pytest.raises(SpecError, match="out of range"):
        logit_lens(tiny, [1, 2, 10**6])
    with pytest.raises(SpecError, match="unknown metric"):
        logit_lens(tiny, PROMPT).figure("logits")


def test_as_dict_shape(tiny):
    lens = logit_lens(tiny, PROMPT, top=3)
    d = json.loads(json.dumps(lens.as_dict()))
    R, P = 5, len(lens.tokens)
    assert d["rows"] == row_hooks(4) and d["tokens"] == lens.tokens and len(d["str_tokens"]) == P
    assert np.array(d["top_ids"]).shape == (R, P, 3) and np.array(d["top_probs"]).shape == (R, P, 3)
    assert np.array(d["entropy"]).shape == (R, P) and np.array(d["kl_to_final"]).shape == (R, P)
    assert d["units"]["kl_to_final"] == "nats" and d["next_token_rank"][0][-1] is None


def test_figures(tiny, tmp_path):
    from matplotlib.figure import Figure

    from probes.plots.lens import compare_figure
    from probes.tokens import show_token

    lens = logit_lens(tiny, PROMPT)
    for metric in ("prob", "entropy", "kl", "rank"):
        fig = lens.figure(metric)
        assert isinstance(fig, Figure)
    with probes.skip(tiny, "odd"):
        pruned = logit_lens(tiny, lens.tokens)
    compare_figure(lens, pruned, "kl").savefig(tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    generation_lens(tiny, "ROMEO:", max_new_tokens=4).figure("rank").savefig(tmp_path / "gen.png")
    assert show_token(" $x$ and a very long token\n", 10, plot=True) == r"␣\$x\$␣and␣…"


def run(*args):
    return run_cli(*["lens", *map(str, args)])


def test_cli_json_covers_every_position(tiny_dir, tiny):
    r = run("--model", tiny_dir, "--prompt", PROMPT, "--json", "--top", 3)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)  # JSON alone on stdout
    lens = logit_lens(tiny, PROMPT, top=3)
    assert d["tokens"] == lens.tokens and d["rows"] == row_hooks(4)
    assert d["top_ids"] == lens.top_ids.tolist()
    np.testing.assert_allclose(d["kl_to_final"], lens.kl_to_final, atol=1e-5)
    assert d["model_source"]["n_layers"] == 4 and "versions" in d


def test_cli_table_plot_and_compare(tiny_dir, tmp_path):
    png = tmp_path / "both.png"
    r = run("--model", tiny_dir, "--prompt", PROMPT, "--position", 3, "--compare-skip", "odd", "--plot", png)
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "position 3" in r.stdout and "with blocks 1,3 skipped" in r.stdout and "1 (skipped)" in r.stdout
    assert r.stdout.count("\nembed ") == 2


def test_cli_position_picks_the_tables_and_the_figures_positions(tiny_dir, tiny, tmp_path):
    png = tmp_path / "some.png"
    r = run("--model", tiny_dir, "--prompt", PROMPT, "--position", "2-4, -1", "--plot", png, "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    full = logit_lens(tiny, PROMPT)  # every position; the chosen ones are its columns
    n = len(full.tokens)
    assert d["positions"] == [2, 3, 4, n - 1] and d["tokens"] == full.tokens
    assert d["top_ids"] == full.top_ids[:, [2, 3, 4, n - 1]].tolist()
    np.testing.assert_allclose(d["kl_to_final"], full.kl_to_final[:, [2, 3, 4, n - 1]], atol=1e-5)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # The table: one per chosen position, in order; without --position, the last one alone.
    r = run("--model", tiny_dir, "--prompt", PROMPT, "--position", "-1,2-4")
    heads = [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.startswith("position ")]
    assert heads == ["position 2", "position 3", "position 4", f"position {n - 1}"]
    r = run("--model", tiny_dir, "--prompt", PROMPT)
    assert [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.startswith("position ")] == [
        f"position {n - 1}"
    ]


def test_the_figure_shows_the_chosen_positions(tiny):
    some = logit_lens(tiny, PROMPT, positions=[6, 2, 3, -1])
    ax = some.figure().axes[0]
    shown = [t.get_text() for t in ax.get_xticklabels()]
    assert shown == [show_token(some.str_tokens[p], 10, plot=True) for p in (2, 3, 6, len(some.tokens) - 1)]
    assert ax.get_xlabel() == f"input token at positions 2-3,6,{len(some.tokens) - 1}"
    assert (
        logit_lens(tiny, PROMPT, positions=[4]).figure().axes[0].get_xlabel() == "input token at position 4"
    )


@pytest.mark.parametrize("spec", ["1.5", "3-1", "a", "", "2,,3", "-3-1", "99999"])
def test_a_bad_position_is_one_line_before_loading(spec):
    r = run("--prompt", PROMPT, "--position", spec)
    assert r.exit_code == 2 and r.stdout == "" and "loading" not in r.stderr, r.output
    assert r.stderr.strip().splitlines() == [
        "error: position 99999 is out of range: the model reads at most 256 tokens"
        if spec == "99999"
        else f"error: --position {spec!r}: give positions like -1, 0,4,-1 or 2-9"
    ]


def test_cli_generate(tiny_dir, tmp_path):
    png = tmp_path / "gen.png"
    r = run("--model", tiny_dir, "--prompt", "ROMEO:", "--generate", 5, "--greedy", "--json", "--plot", png)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert len(d["generation"]["tokens"]) == 5 and d["generation"]["emergence_row"][0] is not None
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = run("--model", tiny_dir, "--prompt", "ROMEO:", "--generate", 3, "--greedy")
    assert r.exit_code == 0, r.stderr
    assert "emerges" in r.stdout and len(r.stdout.strip().splitlines()) >= 3 + 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--position", 99], "position 99 is out of range"),
        (["--metric", "logits"], "unknown metric 'logits'"),
        (["--skip", "odd", "--compare-skip", "even"], "--compare-skip"),
        (["--compare-skip", "none"], "names no block: the comparison would be the full model against itself"),
    ],
)
def test_cli_errors_are_one_line(tiny_dir, args, message):
    r = run("--model", tiny_dir, "--prompt", PROMPT, *args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert all(not line.startswith("error") for line in lines[:-1])  # at most 'loading ...' before it
    assert "Traceback" not in r.output and r.stdout == ""


def test_compare_skip_is_the_same_tokens_read_with_those_blocks_skipped(tiny):
    lens = logit_lens(tiny, PROMPT, compare_skip="odd")
    with probes.skip(tiny, "odd"):
        alone = logit_lens(tiny, lens.tokens)
    assert lens.compare is not None and lens.compare.skipped_blocks == [1, 3] and lens.skipped_blocks == []
    np.testing.assert_allclose(lens.compare.kl_to_final, alone.kl_to_final, atol=1e-6)
    assert lens.compare.tokens == lens.tokens and lens.as_dict()["compare"]["skipped_blocks"] == [1, 3]
    with pytest.raises(probes.ProbesError):
        logit_lens(tiny, PROMPT, compare_skip="none")
