"""Every study on each tested architecture, against transformers itself on tiny random checkpoints.

GPT-2, Llama (grouped-query attention, tied embeddings), GPT-NeoX (parallel residual, partial rotary,
untied), Qwen2 (untied) and Gemma 2 (logit soft-capping, sandwich norms): built at test time with
random norm weights, loaded through `probes.load`, and checked against transformers' own forward,
a greedy loop without a cache, and the model with blocks removed by hand.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import ARCHS, build_arch_checkpoint

import probes
from probes.core.runner import runner_for
from probes.errors import ModelLoadError

PROMPT = "ROMEO: But soft, what light"


@pytest.fixture(scope="module", params=ARCHS)
def arch(request, tmp_path_factory, device):
    """(name, folder, probes model, transformers model) of one architecture."""
    from transformers import AutoModelForCausalLM

    name = request.param
    folder = build_arch_checkpoint(tmp_path_factory.mktemp(name) / "ckpt", name)
    model = probes.load(str(folder), device=device)
    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").to(device).eval()
    return name, folder, model, hf


def _ids(model, prompt=PROMPT) -> torch.Tensor:
    from probes.core.prompt import prompt_ids

    return torch.tensor([prompt_ids(model, prompt)[1]], device=model.cfg.device)


def _uses_layernorm(hf) -> bool:
    """LayerNorm models' residual stream is centred by compatibility mode; RMSNorm models' is not touched."""
    return hf.config.model_type in ("gpt2", "gpt_neox")


def _centred(x):
    return x - x.mean(-1, keepdim=True)


def test_logits_and_lens_rows_equal_transformers(arch):
    name, _, model, hf = arch
    ids = _ids(model)
    with torch.no_grad():
        ref = hf(ids, output_hidden_states=True)
    want = ref.logits.log_softmax(-1)
    runner = runner_for(model)
    with torch.no_grad():
        got = runner.logits(ids).log_softmax(-1)
        streams = runner.streams(ids)
        last = runner.readout(streams[-1]).log_softmax(-1)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=0)
    torch.testing.assert_close(last, want, atol=2e-4, rtol=0)  # the lens's last row is the model's output
    # transformers' hidden_states[i] enters block i for i < L (its last one is after the final norm).
    for i in range(model.cfg.n_layers):
        a, b = streams[i], ref.hidden_states[i]
        if _uses_layernorm(hf):
            a, b = _centred(a), _centred(b)
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4, msg=f"{name} row {i}")
    lens = probes.logit_lens(model, PROMPT, top=3)
    final = torch.from_numpy(lens.top_probs[-1, :, 0])
    torch.testing.assert_close(final, want[0].exp().max(-1).values.cpu(), atol=1e-4, rtol=0)
    assert (lens.top_ids[-1, :, 0] == want[0].argmax(-1).cpu().numpy()).all()


def _greedy_no_cache(hf, ids: list[int], n: int) -> list[int]:
    seq, out = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(hf(torch.tensor([seq], device=hf.device), use_cache=False).logits[0, -1].argmax())
            out.append(nxt)
            seq.append(nxt)
    return out


def test_greedy_equals_transformers_without_cache(arch):
    _, _, model, hf = arch
    out = probes.generate(model, PROMPT, max_new_tokens=12, greedy=True)
    assert out[0].tokens == _greedy_no_cache(hf, out.prompt_tokens, 12)


def test_batched_generation_equals_alone(arch):
    _, _, model, _ = arch
    prompts = ["ROMEO:", "JULIET: O Romeo, Romeo! wherefore", "Hi"]
    together = probes.generate(model, prompts, max_new_tokens=8, num_samples=2, seed=3, temperature=0.9)
    for prompt, got in zip(prompts, together):
        alone = probes.generate(model, prompt, max_new_tokens=8, num_samples=2, seed=3, temperature=0.9)
        assert [s.tokens for s in got] == [s.tokens for s in alone]


def _without_blocks(hf, skipped: list[int]):
    """A copy of the transformers model with the `skipped` decoder layers removed: the layer loop by hand."""
    small = copy.deepcopy(hf)
    base = small.base_model
    name = "h" if hasattr(base, "h") else "layers"
    layers = getattr(base, name)
    kept = [i for i in range(len(layers)) if i not in skipped]
    setattr(base, name, torch.nn.ModuleList([layers[i] for i in kept]))
    small.config.num_hidden_layers = len(kept)
    if getattr(small.config, "layer_types", None):
        small.config.layer_types = [small.config.layer_types[i] for i in kept]
    return small


@pytest.mark.parametrize("spec", ["odd", "last-half"])
def test_skip_equals_the_layer_loop_by_hand(arch, spec):
    _, _, model, hf = arch
    from probes.core.layers import parse_layers

    skipped = parse_layers(spec, model.cfg.n_layers)
    ids = _ids(model)
    with torch.no_grad():
        want = _without_blocks(hf, skipped)(ids, use_cache=False).logits.log_softmax(-1)
        with probes.skip(model, spec):
            got = runner_for(model).logits(ids).log_softmax(-1)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=0)
    # And a skipped block passes the stream through whole (parallel-residual blocks included).
    with probes.skip(model, spec), torch.no_grad():
        streams = runner_for(model).streams(ids)
    for i in skipped:
        torch.testing.assert_close(streams[i + 1], streams[i], atol=0, rtol=0)


def test_capture_equals_hidden_states(arch):
    _, _, model, hf = arch
    acts = probes.capture(model, PROMPT, hooks="resid_pre")
    ids = acts.tokens[None].to(hf.device)
    with torch.no_grad():
        ref = hf(ids, output_hidden_states=True).hidden_states
    for i in range(model.cfg.n_layers):
        got = acts[f"blocks.{i}.hook_resid_pre"].to(ref[i].device)
        want = ref[i][0]
        if _uses_layernorm(hf):
            got, want = _centred(got), _centred(want)
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_embeddings_read_the_checkpoints_own_rows(arch):
    name, folder, model, hf = arch
    from probes.studies.embeddings.study import checkpoint_embeddings

    found = checkpoint_embeddings(model)
    raw = type(hf).from_pretrained(folder).get_input_embeddings().weight.float().cpu()
    torch.testing.assert_close(found.tokens, raw, atol=0, rtol=0)
    emb = probes.embeddings(model, words=["king", "thou"])
    matrices = emb.summary["matrices"]
    if name == "gpt2":
        assert found.positions is not None and emb.summary["positions"]["n"] == 64
    else:
        assert found.positions is None and emb.summary["positions"] is None  # rotary: nothing learned
        with pytest.raises(probes.ProbesError, match="no learned position embeddings"):
            emb.figure_positions()
    tied = json.loads((folder / "config.json").read_text()).get("tie_word_embeddings", True)
    assert (matrices["output"] == "tied") == tied, matrices
    torch.testing.assert_close(emb.vectors[0], raw[emb.words[0].ids].mean(0), atol=1e-6, rtol=0)


def test_tuned_lens_trains_and_reads(arch, tmp_path):
    _, _, model, _ = arch
    texts = [f"ROMEO: But soft, what light through yonder window breaks? {i}" * 3 for i in range(8)]
    lens = probes.train_tuned_lens(model, texts, steps=3, tokens_per_step=64)
    lens.save(tmp_path / "lens")
    loaded = probes.load_tuned_lens(tmp_path / "lens", model)
    result = probes.logit_lens(model, PROMPT, lens=loaded)
    plain = probes.logit_lens(model, PROMPT)
    assert result.top_probs.shape == plain.top_probs.shape
    assert (result.top_ids[-1] == plain.top_ids[-1]).all()  # the last row is the model's output either way


def test_other_causal_models_are_refused_or_warned(tmp_path):
    """A model the bridge has no adapter for, or that is not a causal LM, is refused in one line."""
    folder = build_arch_checkpoint(tmp_path / "llama", "llama")
    config = json.loads((folder / "config.json").read_text())
    for arch, words in (("BertForMaskedLM", "not a causal language model"), ("NopeForCausalLM", "no bridge")):
        (folder / "config.json").write_text(json.dumps(config | {"architectures": [arch]}))
        with pytest.raises(ModelLoadError, match=words) as err:
            probes.load(str(folder))
        assert "\n" not in str(err.value)


def test_every_command_runs(arch, tmp_path):
    """info, lens, prune, generate, embed, capture and report, as a user types them, on each architecture."""
    from cli_runner import run_cli

    name, folder, _, _ = arch
    m = ["--model", folder]
    runs = {
        "info": ["info", *m, "--json"],
        "lens": ["lens", *m, "--prompt", PROMPT, "--plot", tmp_path / "lens.png", "--json"],
        "prune": ["prune", *m, "--skip", "odd", "--max-new-tokens", "4", "--json"],
        "generate": ["generate", *m, "--prompt", "ROMEO:", "--max-new-tokens", "4", "--num-samples", "2"],
        "embed": ["embed", *m, "--plot-dir", tmp_path / "emb", "--json"],
        "capture": ["capture", *m, "--prompt", PROMPT, "--out", tmp_path / "c.safetensors", "--json"],
        "report": ["report", *m, "--out", tmp_path / "study", "--max-new-tokens", "2", "--num-samples", "1"],
    }
    for what, args in runs.items():
        r = run_cli(*args)
        assert r.exit_code == 0, (name, what, r.output[-2000:])
    info = json.loads(run_cli(*runs["info"]).stdout)
    assert info["architecture"] == type(arch[3]).__name__ and info["n_layers"] == 4
    figures = sorted(p.name for p in (tmp_path / "emb").iterdir())
    assert ("positions.png" in figures) == (name == "gpt2")  # rotary models have no learned positions
    assert (tmp_path / "study" / "report.md").is_file() and (tmp_path / "lens.png").stat().st_size > 10_000


def _broken(tmp_path, how):
    from safetensors.torch import load_file, save_file

    folder = build_arch_checkpoint(tmp_path / "llama", "llama")
    weights = load_file(folder / "model.safetensors")
    key = "model.layers.1.mlp.up_proj.weight"
    if how == "missing":
        weights.pop(key)
    elif how == "extra":
        weights["model.layers.0.surprise.weight"] = weights[key].clone()
    elif how == "shape":
        weights[key] = weights[key][:, :-1].clone()
    elif how == "nan":
        weights[key][0, 0] = float("nan")
    elif how == "config":
        (folder / "config.json").write_text(
            (folder / "config.json").read_text().replace('"num_hidden_layers": 4', '"num_hidden_layers": -4')
        )
    elif how == "tokenizer":  # an embedding two rows short of the tokenizer
        config = json.loads((folder / "config.json").read_text())
        rows = config["vocab_size"] - 2
        weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"][:rows].clone()
        (folder / "config.json").write_text(json.dumps(config | {"vocab_size": rows}))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize(
    "how, words",
    [
        ("missing", ["lack 1 tensor", "LlamaForCausalLM", "layers.1.mlp.up_proj.weight"]),
        ("extra", ["does not have", "surprise"]),
        ("shape", ["shapes do not match", "up_proj"]),
        ("nan", ["NaN or inf", "up_proj"]),
        ("config", ["num_hidden_layers must be a positive integer"]),
        ("tokenizer", ["tokenizer has", "embedding only"]),
    ],
)
def test_a_broken_llama_is_one_line(tmp_path, how, words):
    from cli_runner import run_cli

    r = run_cli("info", "--model", _broken(tmp_path, how))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.output, r.output
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_mid_rows_are_the_stream_after_attention(arch):
    """`mid=True`: 2L+1 rows, each block's resid_mid between its input and output, read like any row."""
    name, _, model, _ = arch
    if name == "gpt_neox":  # parallel blocks: attention and MLP both read the block's input
        with pytest.raises(probes.ProbesError, match="no resid_mid"):
            probes.logit_lens(model, PROMPT, mid=True)
        return
    plain = probes.logit_lens(model, PROMPT, top=3)
    mid = probes.logit_lens(model, PROMPT, top=3, mid=True)
    n = model.cfg.n_layers
    assert len(mid.rows) == 2 * n + 1 and mid.rows[1] == "blocks.0.hook_resid_mid"
    assert mid.row_labels[:3] == ["embed", "0 attn", "0"]
    # The rows shared with the plain lens read the same; a mid row is what the capture of resid_mid reads.
    import numpy as np

    np.testing.assert_allclose(mid.top_probs[::2], plain.top_probs, atol=1e-5)
    acts = probes.capture(model, PROMPT, hooks="resid_mid", layers=[1])
    with torch.no_grad():
        logits = runner_for(model).readout(acts["blocks.1.hook_resid_mid"].to(model.cfg.device))
    top = logits.softmax(-1).max(-1).values.cpu().numpy()
    np.testing.assert_allclose(mid.top_probs[3, :, 0], top, atol=1e-5)
    with pytest.raises(probes.ProbesError, match="tuned lens"):
        probes.logit_lens(model, PROMPT, mid=True, lens=probes.TunedLens.identity(model))
    with probes.skip(model, [1]):
        skipped = probes.logit_lens(model, PROMPT, top=3, mid=True)
    np.testing.assert_allclose(skipped.top_probs[3], skipped.top_probs[2], atol=0)  # passes through
    assert skipped.row_labels[3] == "1 attn (skipped)"


def test_a_gguf_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    monkeypatch.setenv("PROBES_CACHE", str(tmp_path / "cache"))
    import probes.core.gguf as gguf

    real = gguf.importlib.util.find_spec
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(ModelLoadError, match=r"needs the gguf package: pip install 'probes\[gguf\]'"):
        probes.load(str(bad))
    monkeypatch.undo()
    if real("gguf") is not None:
        monkeypatch.setenv("PROBES_CACHE", str(tmp_path / "cache"))
        with pytest.raises(ModelLoadError, match="cannot read GGUF file") as err:
            probes.load(str(bad))
        assert "\n" not in str(err.value)
        assert not any((tmp_path / "cache").rglob("*.safetensors"))  # nothing half-converted is kept


def test_a_llama_from_a_hub_cache_loads_by_name(tmp_path, monkeypatch):
    """#25: `--model someone/tiny-llama` as a user with a previous download has it: the hub cache's
    snapshot loads as its folder does, by name, offline."""
    import huggingface_hub.constants as hub

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    snap = build_arch_checkpoint(repo / "snapshots" / commit, "llama")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, value in (
        ("HF_HOME", str(tmp_path)),
        ("HF_HUB_CACHE", str(tmp_path / "hub")),
        ("HF_HUB_OFFLINE", True),
    ):
        monkeypatch.setattr(hub, name, value)
    by_name = probes.load("someone/tiny-llama")
    by_folder = probes.load(str(snap))
    ids = _ids(by_folder)
    torch.testing.assert_close(by_name(ids), by_folder(ids))
    assert probes.source_of(by_name).name == "someone/tiny-llama"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_weights_equal_transformerlens_own_processing(arch, dtype):
    """`probes.load` processes the weights without TransformerLens' whole-model copies
    (`probes.core.load._no_weight_copies`): every tensor equals TransformerLens' own, bit for bit."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from probes.core.load import _quiet_boot

    _, folder, _, _ = arch
    model = probes.load(str(folder), dtype=dtype)
    torch_dtype = getattr(torch, dtype)
    with _quiet_boot():
        hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        theirs = TransformerBridge.boot_transformers(
            str(folder), hf_model=hf, tokenizer=tokenizer, dtype=torch_dtype
        )
        theirs.enable_compatibility_mode(disable_warnings=True)
    ours, want = model.state_dict(), theirs.state_dict()
    # and every weight in memory of its own, none left a (misaligned) view of the checkpoint file
    assert all(p.untyped_storage().resizable() for p in model.original_model.parameters())
    assert ours.keys() == want.keys()
    for key, tensor in want.items():
        assert ours[key].dtype == tensor.dtype, key
        assert torch.equal(ours[key].cpu(), tensor), key
