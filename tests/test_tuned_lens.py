"""Tuned lens: identity translators are the logit lens exactly; translators applied by hand to transformers'
own hidden states give our rows; training lowers held-out KL at every row; save/load round-trips; another
model's lens is refused; skip shares translators; the CLI trains, refuses to overwrite, and reads through a
lens."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from conftest import build_checkpoint

import probes
from probes.core.load import BUNDLED_DIR
from probes.core.prompt import encode
from probes.studies.lens.generation import generation_lens
from probes.studies.lens.logit import logit_lens
from probes.studies.lens.tuned import TunedLens, TunedLensError, load_tuned_lens, row_owners
from probes.studies.lens.tuned_train import train_tuned_lens

PROMPT = "JULIET: Good night, good night! Parting is such sweet sorrow"
ARRAYS = (
    "top_ids",
    "top_probs",
    "entropy",
    "kl_to_final",
    "final_rank",
    "final_prob",
    "next_rank",
    "next_xent",
)


def shakespeare_lines() -> list[str]:
    text = (BUNDLED_DIR / "heldout.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]


def random_lens(model, scale: float = 0.3, seed: int = 0) -> TunedLens:
    tl = TunedLens.identity(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tl.weight.copy_(scale * torch.randn(tl.weight.shape, generator=g))
        tl.bias.copy_(scale * torch.randn(tl.bias.shape, generator=g))
    return tl


@pytest.fixture(scope="module")
def trained(tiny):
    """A lens trained briefly on the first passages; the rest are held out by the test itself."""
    texts = shakespeare_lines()
    lens = train_tuned_lens(tiny, texts[:12], steps=20, tokens_per_step=256, heldout=0.2, seed=3)
    return lens, texts[12:20]


def test_identity_translators_are_the_logit_lens_exactly(tiny):
    plain, tuned = logit_lens(tiny, PROMPT), logit_lens(tiny, PROMPT, lens=TunedLens.identity(tiny))
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(tuned, name), getattr(plain, name), err_msg=name)
    assert tuned.tuned_lens == "tuned lens" and plain.tuned_lens is None
    over, over_tuned = (
        probes.lens_over(tiny, shakespeare_lines()[:3], n_boot=10, lens=t)
        for t in (None, TunedLens.identity(tiny))
    )
    np.testing.assert_array_equal(over.mean, over_tuned.mean)


def test_translators_on_transformers_hidden_states_give_our_rows(tiny, tiny_hf):
    """h + W (h - mean h) + b by hand on transformers' hidden states, read through ln_f and lm_head."""
    tl = random_lens(tiny)
    ids = encode(tiny, PROMPT)
    lens = logit_lens(tiny, ids, lens=tl)
    with torch.no_grad():
        out = tiny_hf(torch.tensor([ids], device=tiny_hf.device), output_hidden_states=True)
        hs = out.hidden_states  # L+1 of (1, pos, d_model); the last already went through ln_f
        rows = []
        for r, h in enumerate(hs[:-1]):
            h = h[0].double()
            w, b = tl.weight[r].double(), tl.bias[r].double()
            moved = h + (h - h.mean(-1, keepdim=True)) @ w.T + b  # (pos, d_model)
            rows.append(tiny_hf.lm_head(tiny_hf.transformer.ln_f(moved.float())))
        rows.append(tiny_hf.lm_head(hs[-1][0]))
    final = rows[-1].double().log_softmax(-1)
    for r, logits in enumerate(rows):
        logp = logits.double().log_softmax(-1)
        kl = (final.exp() * (final - logp)).sum(-1)
        assert lens.top_ids[r, :, 0].tolist() == logp.argmax(-1).tolist(), f"row {r}"
        np.testing.assert_allclose(lens.kl_to_final[r], kl.cpu().numpy(), atol=2e-4, rtol=0)
        np.testing.assert_allclose(
            lens.top_probs[r], logp.exp().topk(5).values.cpu().numpy(), atol=1e-5, rtol=0
        )
    plain = logit_lens(tiny, ids)
    assert np.abs(plain.kl_to_final[:-1] - lens.kl_to_final[:-1]).max() > 0.1  # the translators really act


def test_training_lowers_heldout_kl_at_every_row(tiny, trained):
    lens, held = trained
    assert lens.meta["training"]["steps"] == 20 and lens.meta["training"]["tokens"] > 20 * 100
    # Scored independently, by the dataset lens, on passages the training never saw.
    before = probes.lens_over(tiny, held, n_boot=10).metric("kl_to_final")[0]
    after = probes.lens_over(tiny, held, n_boot=10, lens=lens).metric("kl_to_final")[0]
    assert (after[:-1] < before[:-1]).all(), (before, after)
    assert after[-1] == before[-1] == 0
    record = lens.meta["training"]["heldout"]  # the training's own held-out windows agree
    assert all(t < b for b, t in zip(record["kl_logit_lens"][:-1], record["kl_tuned_lens"][:-1]))


def test_training_is_deterministic_for_a_seed(tiny):
    texts = shakespeare_lines()[:6]
    flags = [q.requires_grad for q in tiny.parameters()]
    a, b, c = (
        train_tuned_lens(tiny, texts, steps=3, tokens_per_step=128, heldout=0, seed=s) for s in (5, 5, 6)
    )
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)  # another seed, another data order
    assert [q.requires_grad for q in tiny.parameters()] == flags  # the model's flags are restored
    assert all(q.grad is None for q in tiny.parameters())  # the model itself was never trained


def test_saved_and_loaded_lens_gives_identical_rows(tiny, trained, tmp_path):
    lens, _ = trained
    lens.save(tmp_path / "lens")
    assert sorted(p.name for p in (tmp_path / "lens").iterdir()) == ["config.json", "translators.safetensors"]
    back = load_tuned_lens(tmp_path / "lens", tiny)
    assert torch.equal(back.weight, lens.weight) and torch.equal(back.bias, lens.bias)
    a, b = (
        logit_lens(tiny, PROMPT, lens=lens),
        logit_lens(tiny, PROMPT, lens=str(tmp_path / "lens")),
    )
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    with pytest.raises(probes.ProbesError, match="already exists"):
        lens.save(tmp_path / "lens")
    lens.save(tmp_path / "lens", force=True)


def test_another_models_lens_is_refused(tiny, trained, tmp_path):
    lens, _ = trained
    lens.save(tmp_path / "lens")
    other = probes.load(str(build_checkpoint(tmp_path / "other", seed=1)))  # same shape, other weights
    with pytest.raises(TunedLensError, match=r"was trained for model .* not for .*train one for this model"):
        load_tuned_lens(tmp_path / "lens", other)
    with pytest.raises(TunedLensError, match="was trained for model"):
        logit_lens(other, PROMPT, lens=lens)
    r = run_cli("lens", "--model", tmp_path / "other", "--prompt", PROMPT, "--tuned", tmp_path / "lens")
    assert (
        r.exit_code == 2 and r.stderr.strip().startswith("error: ") and "loading" not in r.stderr
    )  # before loading


def test_runs_share_translators_across_skipped_blocks():
    assert row_owners(4, []) == [0, 1, 2, 3, None]
    assert row_owners(4, [1]) == [0, 1, 1, 3, None]
    assert row_owners(4, [3]) == [
        0,
        1,
        2,
        None,
        None,
    ]  # the stream entering a skipped last block is the output
    assert row_owners(4, [0, 2, 3]) == [
        0,
        0,
        None,
        None,
        None,
    ]  # block 1 makes the output; 2 and 3 pass it through
    assert row_owners(4, [0, 2]) == [0, 0, 2, 2, None]


def test_inside_skip(tiny):
    tl = random_lens(tiny)
    with probes.skip(tiny, "1"):
        lens = logit_lens(tiny, PROMPT, lens=tl)
        # Row 2 holds row 1's stream and shares its translator: identical readings.
        np.testing.assert_array_equal(lens.kl_to_final[2], lens.kl_to_final[1])
        pruned = train_tuned_lens(tiny, shakespeare_lines()[:4], steps=2, tokens_per_step=128, heldout=0)
    assert pruned.meta["skipped_blocks"] == [1]
    assert torch.count_nonzero(pruned.weight[2]) == 0 and torch.count_nonzero(pruned.weight[1]) > 0
    with pytest.warns(UserWarning, match=r"trained with blocks \[1\] skipped"):
        logit_lens(tiny, PROMPT, lens=pruned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with probes.skip(tiny, "1"):
            logit_lens(tiny, PROMPT, lens=pruned)
            logit_lens(tiny, PROMPT, lens=tl)  # a full model's lens on a pruned model: silent


def test_generation_lens_through_translators(tiny):
    tl = random_lens(tiny)
    gen = generation_lens(tiny, "ROMEO:", greedy=True, max_new_tokens=4, lens=tl)
    full = logit_lens(tiny, gen.prompt_tokens + gen.generated, lens=tl)
    cols = [len(gen.prompt_tokens) - 1 + j for j in range(4)]
    np.testing.assert_allclose(gen.lens.kl_to_final, full.kl_to_final[:, cols], atol=1e-4)
    assert gen.lens.tuned_lens == "tuned lens"


def test_cli_train_then_read_through_the_lens(tiny_dir, tiny, tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("\n".join(line.replace("\n", " ") for line in shakespeare_lines()[:8]) + "\n")
    out = tmp_path / "my-lens"
    r = run_cli(
        "tuned-lens",
        "train",
        "--dataset",
        f"FILE:{data}",
        "--out",
        out,
        "--steps",
        3,
        "--tokens-per-step",
        128,
        "--model",
        tiny_dir,
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["training"]["steps"] == 3 and d["model_sha256"] == probes.source_of(tiny).checksum
    again = run_cli("tuned-lens", "train", "--dataset", f"FILE:{data}", "--out", out, "--model", tiny_dir)
    assert again.exit_code == 2 and "already exists" in again.stderr and "loading" not in again.stderr
    r = run_cli("lens", "--model", tiny_dir, "--prompt", PROMPT, "--tuned", out, "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    api = logit_lens(tiny, PROMPT, lens=str(out))
    assert d["tuned_lens"] == str(out) and d["top_ids"] == api.top_ids.tolist()
    png = tmp_path / "both.png"
    r = run_cli("lens", "--model", tiny_dir, "--dataset", data, "--tuned", out, "--plot", png)
    assert r.exit_code == 0, r.stderr
    assert f"logit lens against tuned lens ({out})" in r.stdout and png.read_bytes()[:4] == b"\x89PNG"
    r = run_cli("lens", "--model", tiny_dir, "--dataset", data, "--tuned", out, "--compare-skip", "odd")
    assert r.exit_code == 0 and "logit lens with blocks 1,3 skipped; KL and agreement against" in r.stdout
    r = run_cli("lens", "--model", tiny_dir, "--prompt", PROMPT, "--tuned", out, "--compare-skip", "odd")
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", 0], "steps must be an integer >= 1"),
        (["--optimizer", "adam"], "optimizer 'adam'"),
        (["--heldout", 1.5], "heldout 1.5 is out of range"),
    ],
)
def test_cli_train_errors_before_loading(tiny_dir, tmp_path, args, message):
    data = tmp_path / "t.txt"
    data.write_text("some text\n")
    r = run_cli("tuned-lens", "train", "--dataset", data, "--out", tmp_path / "o", "--model", tiny_dir, *args)
    assert r.exit_code == 2 and message in r.stderr and "loading" not in r.stderr


@pytest.mark.slow
def test_bundled_lens_beats_the_logit_lens(bundled):
    tl = load_tuned_lens("bundled", bundled)
    assert tl.weight.shape == (6, 192, 192)
    text = (BUNDLED_DIR / "heldout.txt").read_text(encoding="utf-8")[:700]
    plain, tuned = logit_lens(bundled, text), logit_lens(bundled, text, lens=tl)
    assert (tuned.kl_to_final[:-1].mean(1) < plain.kl_to_final[:-1].mean(1)).all()
    assert plain.kl_to_final[0].mean() > 2 * tuned.kl_to_final[0].mean()


def test_translators_keyword_still_works_with_a_deprecation_warning(tiny):
    tl = TunedLens.identity(tiny)
    with pytest.warns(DeprecationWarning, match="lens="):
        old = logit_lens(tiny, PROMPT, translators=tl)
    new = logit_lens(tiny, PROMPT, lens=tl)
    np.testing.assert_array_equal(old.kl_to_final, new.kl_to_final)


def test_several_lenses_over_a_dataset_read_one_pass_as_each_alone(tiny, monkeypatch):
    from probes.core.runner import Runner

    texts = shakespeare_lines()[:6]
    tl = TunedLens.identity(tiny)
    with torch.no_grad():
        tl.weight.normal_(0, 0.05)  # a lens that really transforms
    alone = [probes.lens_over(tiny, texts, n_boot=20, lens=x, compare_skip="odd") for x in (None, tl)]
    calls = []
    for kind in Runner.__subclasses__():
        monkeypatch.setattr(
            kind, "streams", lambda self, ids, real=kind.streams: calls.append(1) or real(self, ids)
        )
    probes.lens_over(tiny, texts, n_boot=20, compare_skip="odd")
    one = len(calls)
    together = probes.lens_over(tiny, texts, n_boot=20, lens=[None, tl], compare_skip="odd")
    assert one > 0 and len(calls) == 2 * one  # the two lenses read the same forwards
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-6)
        np.testing.assert_allclose(a.compare.mean, b.compare.mean, atol=1e-6)
        assert a.tuned_lens == b.tuned_lens
    assert together[0].tuned_lens is None and together[1].tuned_lens == tl.name
    assert not np.allclose(together[0].mean, together[1].mean)


def test_force_replaces_only_a_lens_folder_and_swaps_it_whole(tiny, tiny_dir, tmp_path, monkeypatch):
    """#28 items 3 and 4: --force never replaces a model's config.json, and a save cut short leaves the old
    lens whole (the new one is staged beside it and swapped in with one rename)."""
    import shutil

    from probes.studies.lens.tuned import TunedLens

    model_copy = tmp_path / "model"
    shutil.copytree(tiny_dir, model_copy)
    before = {p.name: p.read_bytes() for p in model_copy.iterdir()}
    lens = TunedLens.identity(tiny)
    with pytest.raises(probes.ProbesError, match="not a tuned lens folder written by probes"):
        lens.save(model_copy, force=True)
    assert {p.name: p.read_bytes() for p in model_copy.iterdir()} == before
    folder = lens.save(tmp_path / "lens")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(probes.ProbesError, match="also holds 'notes.txt'"):
        lens.save(folder, force=True)
    (folder / "notes.txt").unlink()
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    changed = TunedLens.identity(tiny)
    with torch.no_grad():
        changed.bias.add_(1.0)

    import safetensors.torch

    real = safetensors.torch.save_file

    def interrupted(tensors, path, *a, **k):
        real(tensors, path, *a, **k)
        raise KeyboardInterrupt  # after the new translators are written, before the config

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        changed.save(folder, force=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old  # the old lens, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lens", "model"]  # no staging folder left
    changed.save(folder, force=True)
    assert torch.equal(probes.load_tuned_lens(folder, tiny).bias, changed.bias.detach().float().cpu())
