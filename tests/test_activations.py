"""Capture: states match transformers, skips pass the stream through, files round-trip and write
atomically."""

from __future__ import annotations

import json
import os

import pytest
import torch
from cli_runner import run_cli

import probes
import probes.studies.capture.activations as activations
from probes.core.hooks import attached
from probes.core.prompt import encode
from probes.core.state import hook_count
from probes.errors import ProbesError, SpecError
from probes.studies.capture import format as capture_format

PROMPT = "HAMLET: To be, or not to be, that is the question"


def centred(x: torch.Tensor) -> torch.Tensor:
    # Compatibility mode centres the writing weights, so the stream lacks its per-position mean.
    return x - x.mean(-1, keepdim=True)


def test_resid_and_patterns_match_transformers(tiny, tiny_hf):
    acts = probes.capture(tiny, PROMPT, hooks=("resid_pre", "resid_post", "pattern"))
    ids = acts.tokens[None].to(tiny_hf.device)  # (1, pos)
    assert acts.tokens.tolist() == encode(tiny, PROMPT)
    with torch.no_grad():
        out = tiny_hf(ids, output_hidden_states=True, output_attentions=True)
    n = tiny.cfg.n_layers
    assert len(out.hidden_states) == n + 1
    for i in range(n):
        torch.testing.assert_close(
            acts[f"blocks.{i}.hook_resid_pre"], centred(out.hidden_states[i][0]).cpu(), atol=1e-4, rtol=0
        )
        torch.testing.assert_close(
            acts[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0].cpu(), atol=1e-5, rtol=0
        )
        if i < n - 1:  # transformers' last hidden state has the final norm applied
            torch.testing.assert_close(
                acts[f"blocks.{i}.hook_resid_post"],
                centred(out.hidden_states[i + 1][0]).cpu(),
                atol=1e-4,
                rtol=0,
            )
    assert acts.stack("resid_pre").shape == (n, len(acts.tokens), tiny.cfg.d_model)
    assert acts.stack("pattern").shape == (n, tiny.cfg.n_heads, len(acts.tokens), len(acts.tokens))


def test_bundled_resid_matches_transformers(bundled, bundled_hf):
    acts = probes.capture(bundled, "ROMEO: What light through yonder window breaks?", hooks=("resid_pre",))
    with torch.no_grad():
        hidden = bundled_hf(acts.tokens[None].to(bundled_hf.device), output_hidden_states=True).hidden_states
    for i in range(bundled.cfg.n_layers):
        torch.testing.assert_close(
            acts[f"blocks.{i}.hook_resid_pre"], centred(hidden[i][0]).cpu(), atol=1e-4, rtol=0
        )


def test_only_requested_hooks_and_layers_are_recorded(tiny):
    acts = probes.capture(
        tiny, PROMPT, hooks="resid_mid,attn.hook_q,hook_embed,blocks.3.hook_mlp_out", layers="1-2"
    )
    assert list(acts) == [
        "hook_embed",
        "blocks.1.hook_resid_mid",
        "blocks.1.attn.hook_q",
        "blocks.2.hook_resid_mid",
        "blocks.2.attn.hook_q",
        "blocks.3.hook_mlp_out",
    ]
    pos = len(acts.tokens)
    assert acts["blocks.1.attn.hook_q"].shape == (pos, tiny.cfg.n_heads, tiny.cfg.d_head)
    assert acts.layers == [1, 2] and acts.layers_of("resid_mid") == [1, 2]


def test_skipped_block_passes_the_stream_through(tiny):
    hooks = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "pattern")
    with probes.skip(tiny, "odd"):
        acts = probes.capture(tiny, PROMPT, hooks=hooks)
    assert acts.skipped_blocks == [1, 3]
    for i in (1, 3):
        assert torch.equal(acts[f"blocks.{i}.hook_resid_post"], acts[f"blocks.{i}.hook_resid_pre"])
        assert torch.equal(acts[f"blocks.{i}.hook_resid_mid"], acts[f"blocks.{i}.hook_resid_pre"])
        assert not acts[f"blocks.{i}.hook_attn_out"].any() and not acts[f"blocks.{i}.hook_mlp_out"].any()
        assert f"blocks.{i}.attn.hook_pattern" not in acts
    assert acts.absent == ["blocks.1.attn.hook_pattern", "blocks.3.attn.hook_pattern"]
    # The stream leaving block 0 enters block 2 untouched.
    assert torch.equal(acts["blocks.2.hook_resid_pre"], acts["blocks.0.hook_resid_post"])
    # Kept blocks still compute: resid_post = resid_mid + mlp_out.
    torch.testing.assert_close(
        acts["blocks.2.hook_resid_post"], acts["blocks.2.hook_resid_mid"] + acts["blocks.2.hook_mlp_out"]
    )
    with pytest.raises(SpecError, match="skipped blocks do not compute it"):
        acts.stack("pattern")
    cos = acts.cosines()
    assert cos[1] == pytest.approx(1.0, abs=1e-6) and cos[3] == pytest.approx(1.0, abs=1e-6) and cos[0] < 0.99


@pytest.mark.parametrize("skip", [None, "0,2"])
def test_generation_equals_capture_of_the_final_sequence(tiny, skip):
    hooks = ("resid_pre", "resid_post", "pattern", "attn_scores", "q", "mlp_post")
    with probes.skip(tiny, skip):
        gen = probes.capture(tiny, PROMPT, hooks=hooks, generate=6, seed=5, temperature=1.0)
        full = probes.capture(tiny, gen.tokens.tolist(), hooks=hooks)
    n_prompt = gen.meta.n_prompt_tokens
    assert len(gen.tokens) == n_prompt + 6 and gen.meta.generated == 6 and gen.meta.seed == 5
    assert list(gen) == list(full)
    for name in gen:
        a, b = gen[name], full[name]
        assert a.shape == b.shape, name
        assert torch.equal(a.isneginf(), b.isneginf()), name  # the same causal mask in the scores
        torch.testing.assert_close(
            a.nan_to_num(neginf=0), b.nan_to_num(neginf=0), atol=1e-4, rtol=0, msg=name
        )
    # Patterns of the generated rows are lower-triangular and each row sums to 1.
    p = gen["blocks.1.attn.hook_pattern"]  # (heads, pos, pos); block 1 is kept in both cases
    assert torch.equal(p, p.tril()) and torch.allclose(p.sum(-1), torch.ones(p.shape[:2]))


def test_generation_draws_what_probes_generate_draws(tiny):
    acts = probes.capture(tiny, PROMPT, generate=8, seed=11, top_k=20)
    sample = probes.generate(tiny, PROMPT, max_new_tokens=8, seed=11, top_k=20)[0]
    n_prompt = acts.meta.n_prompt_tokens
    assert acts.tokens[n_prompt:].tolist() == sample.tokens
    assert acts.meta.sampling["top_k"] == 20


def test_generation_past_the_context_is_refused(tiny):
    with pytest.raises(ProbesError, match="exceed the context of 64"):
        probes.capture(tiny, [0] * 60, generate=5)


def test_hook_count_unchanged_after_success_and_failure(tiny):
    before = hook_count(tiny)
    probes.capture(tiny, PROMPT, hooks=("resid_pre", "pattern"), generate=2, greedy=True)
    assert hook_count(tiny) == before

    def boom(t, hook):
        raise RuntimeError("boom")

    with attached(tiny, [("blocks.2.hook_resid_pre", boom)]):
        inside = hook_count(tiny)
        assert inside == before + 1
        with pytest.raises(RuntimeError, match="boom"):
            probes.capture(tiny, PROMPT, hooks=("resid_pre", "resid_post"))
        assert hook_count(tiny) == inside  # capture removed its hooks, not the caller's
    assert hook_count(tiny) == before
    with pytest.raises(ProbesError, match="never fired"):
        probes.capture(tiny, PROMPT, hooks=("hook_attn_in",))  # TL's bridge never computes this one
    assert hook_count(tiny) == before


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("resid_pr", "resid_pre"),
        ("patern", "pattern"),
        ("blocks.1.hook_resid_postt", "blocks.1.hook_resid_post"),
    ],
)
def test_unknown_hook_name_lists_closest_matches(tiny, name, suggestion):
    with pytest.raises(SpecError) as e:
        probes.capture(tiny, PROMPT, hooks=(name,))
    msg = str(e.value)
    assert (
        f"unknown hook {name!r}" in msg
        and f"did you mean {suggestion}" in msg
        and "short names: resid_pre" in msg
    )


@pytest.mark.parametrize(
    "hooks, words",
    [
        ("blocks.4.hook_resid_post", ["has 4 blocks (0-3)"]),
        ("resid_pre,blocks.17.attn.hook_q", ["'blocks.17.attn.hook_q'", "has 4 blocks (0-3)"]),
        ("blocks.2.hook_nonsense", ["unknown hook 'blocks.2.hook_nonsense'", "did you mean blocks.2.hook_"]),
        ("blocks.0.attn.hook_patern", ["did you mean blocks.0.attn.hook_pattern"]),
        ("hook_embedd", ["did you mean hook_embed"]),
        ("mlp.hook_postt", ["did you mean mlp.hook_post"]),
    ],
)
def test_a_wrong_full_hook_name_is_refused_before_the_model_loads(tiny, tiny_dir, tmp_path, hooks, words):
    from probes.cli.common import Target

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        data = tmp_path / "texts.txt"
        data.write_text("one text\n")
        for source in (["--prompt", "Hi"], ["--dataset", data]):
            r = run(*source, "--hooks", hooks, "--out", tmp_path / "s", "-m", tiny_dir)
            assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
            assert all(w in r.stderr for w in words), r.stderr
    with pytest.raises(SpecError) as e:  # the library says the same of a loaded model
        probes.capture(tiny, PROMPT, hooks=hooks.split(","))
    assert all(w in str(e.value) for w in words), str(e.value)


def test_the_hook_tables_are_the_bridges(tiny):
    from probes.core.hooks import BLOCK_HOOKS, MODEL_HOOKS

    block = {n.removeprefix("blocks.1.") for n in tiny.hook_dict if n.startswith("blocks.1.")}
    assert sorted(BLOCK_HOOKS) == sorted(block)
    assert sorted(MODEL_HOOKS) == sorted(n for n in tiny.hook_dict if not n.startswith("blocks."))


def test_bad_arguments(tiny):
    with pytest.raises(SpecError, match="the model has 4 blocks"):
        probes.capture(tiny, PROMPT, layers="2-9")
    with pytest.raises(ProbesError, match="need generate=N"):
        probes.capture(tiny, PROMPT, seed=3)
    with pytest.raises(ProbesError, match="num_samples must be 1"):
        probes.capture(tiny, PROMPT, generate=2, num_samples=3)
    with pytest.raises(ProbesError, match="temperature"):
        probes.capture(tiny, PROMPT, generate=2, temperature=-1.0)


def test_save_load_round_trips_bit_for_bit(tiny, tmp_path):
    with probes.skip(tiny, "1"):
        acts = probes.capture(
            tiny, PROMPT, hooks=("resid_pre", "resid_mid", "pattern", "attn_scores"), generate=3, seed=2
        )
    path = acts.save(tmp_path / "s.safetensors")
    back = probes.load_activations(path)
    assert back.meta == acts.meta and list(back) == list(acts)
    assert all(torch.equal(back[k], acts[k]) and back[k].dtype == acts[k].dtype for k in acts)
    assert torch.equal(back.tokens, acts.tokens) and back.tokens.dtype == torch.int64
    assert back.str_tokens == acts.str_tokens and len(back.str_tokens) == len(back.tokens)
    m = back.meta
    assert (
        m.model == probes.source_of(tiny).name and len(m.model_sha256) == 16 and m.weights_processed is True
    )
    assert m.skipped_blocks == [1] and m.seed == 2 and m.prompt == PROMPT
    assert m.versions["probes"] == probes.__version__ and m.versions["transformer-lens"].startswith("4.")
    assert [f.name for f in tmp_path.iterdir()] == ["s.safetensors"]  # no temporary file left behind


def test_save_refuses_an_existing_file_without_force(tiny, tmp_path):
    acts = probes.capture(tiny, PROMPT)
    path = tmp_path / "s.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(ProbesError, match="already exists.*force=True"):
        acts.save(path)
    assert path.read_bytes() == b"old"
    acts.save(path, force=True)
    assert torch.equal(probes.load_activations(path).tokens, acts.tokens)


def test_interrupted_save_leaves_the_old_file_and_no_temporary(tiny, tmp_path, monkeypatch):
    acts = probes.capture(tiny, PROMPT)
    path = tmp_path / "s.safetensors"
    acts.save(path)
    old = path.read_bytes()

    def interrupted(tensors, tmp, metadata):
        with open(tmp, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(capture_format, "write_tensors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        acts.save(path, force=True)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["s.safetensors"]


def test_unwritable_output_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ProbesError, match="is not a directory"):
        activations.check_output(blocker / "s.safetensors")
    with pytest.raises(ProbesError, match="does not exist"):
        activations.check_output(tmp_path / "nope" / "s.safetensors")
    with pytest.raises(ProbesError, match="is a directory"):
        activations.check_output(tmp_path, force=True)


def test_load_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ProbesError, match="not one written by probes capture"):
        probes.load_activations(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ProbesError, match="not a readable safetensors file"):
        probes.load_activations(tmp_path / "junk.safetensors")


def test_norms_cosines_and_figure(tiny):
    acts = probes.capture(tiny, PROMPT, hooks=("resid_pre", "resid_post"))
    norms = acts.norms()
    x = acts.stack("resid_pre")[:, 1:]  # (layer, pos - BOS, d_model)
    torch.testing.assert_close(norms["resid_pre"], x.norm(dim=-1).mean(-1))
    assert set(acts.cosines()) == set(range(tiny.cfg.n_layers))
    a, b = acts["blocks.2.hook_resid_pre"][1:], acts["blocks.2.hook_resid_post"][1:]
    assert acts.cosines()[2] == pytest.approx(
        float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()), abs=1e-6
    )
    fig = acts.figure()
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure) and len(fig.axes) == 2


# --- CLI ---------------------------------------------------------------------------------------


def run(*args):
    return run_cli("capture", *args)


def test_cli_writes_the_file_and_refuses_to_overwrite(tiny_dir, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run(
        "--prompt",
        PROMPT,
        "--out",
        out,
        "--model",
        tiny_dir,
        "--layers",
        "0-1",
        "--hooks",
        "resid_pre,attn_out",
    )
    assert r.exit_code == 0, r.output
    acts = probes.load_activations(out)
    assert list(acts) == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_attn_out",
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_attn_out",
    ]
    assert "resid_pre" in r.stdout and "attn_out" in r.stdout  # the summary table
    before = out.read_bytes()

    r = run("--prompt", "other", "--out", out, "--model", tiny_dir)
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and "already exists" in r.stderr and "Traceback" not in r.output
    assert out.read_bytes() == before

    r = run("--prompt", "other", "--out", out, "--model", tiny_dir, "--force")
    assert r.exit_code == 0, r.output
    assert probes.load_activations(out).prompt == "other"


def test_cli_json_and_generation(tiny_dir, tmp_path):
    out, plot = tmp_path / "g.safetensors", tmp_path / "g.png"
    r = run(
        "--start",
        PROMPT,
        "-o",
        out,
        "-m",
        tiny_dir,
        "--generate",
        4,
        "--seed",
        7,
        "--skip",
        "odd",
        "--json",
        "--plot",
        plot,
        "--hooks",
        "resid_pre,resid_mid,resid_post",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (
        data["out"] == str(out)
        and data["generated"] == 4
        and data["seed"] == 7
        and data["skipped_blocks"] == [1, 3]
    )
    assert [row["layer"] for row in data["layers"]] == [0, 1, 2, 3]
    assert data["layers"][1]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert plot.stat().st_size > 0
    assert len(probes.load_activations(out).tokens) == len(data["tokens"])


def test_cli_checks_arguments_before_loading(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, message in [
        (["--prompt", "x", "--out", blocker / "s.safetensors"], "is not a directory"),
        (
            ["--prompt", "x", "--out", tmp_path / "s.safetensors", "--seed", 3],
            "--seed: sampling options apply only with --generate",
        ),
        (["--prompt", "x", "--out", tmp_path / "s.safetensors", "--plot", tmp_path / "p.gif"], "--plot"),
        (["--out", tmp_path / "s.safetensors"], "give a prompt"),
    ]:
        r = run(*args, "--model", tmp_path / "no-such-model")  # never reached: the checks come first
        assert r.exit_code == 2, r.output
        assert message in r.stderr and "loading" not in r.stderr


def test_tensors_are_indexed_as_a_transformer_lens_cache_is(tiny):
    """#27 item 9: acts["resid_post", 3] and acts["embed"] reach the tensors TransformerLens users expect."""
    acts = probes.capture(tiny, PROMPT, hooks=["resid_post", "hook_embed"])
    n = tiny.cfg.n_layers
    assert torch.equal(acts["resid_post", 1], acts["blocks.1.hook_resid_post"])
    assert torch.equal(acts["resid_post", -1], acts[f"blocks.{n - 1}.hook_resid_post"])
    assert torch.equal(acts["hook_resid_post", 0], acts["blocks.0.hook_resid_post"])
    assert torch.equal(acts["embed"], acts["hook_embed"])
    assert ("resid_post", 2) in acts and ("attn_out", 2) not in acts and 3 not in acts
    with pytest.raises(KeyError, match="was not captured"):
        acts["attn_out", 2]
    with pytest.raises(SpecError, match="out of range"):
        acts["resid_post", n]
    with pytest.raises(SpecError, match=r"\(name, block\)"):
        acts["resid_post", "3"]
