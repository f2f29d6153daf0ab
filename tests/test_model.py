"""Loading: the bridge matches transformers, loader errors are clear, the bundled model is real."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import probes
from probes.errors import ModelLoadError


def test_tiny_checkpoint_is_tiny(tiny):
    assert tiny.cfg.n_layers == 4 and tiny.cfg.d_model == 64 and tiny.cfg.n_heads == 4


def test_bridge_matches_transformers_on_tiny(tiny, tiny_hf):
    ids = torch.tensor([[0, 5, 17, 300, 42, 7]], device=tiny.cfg.device)
    with torch.no_grad():
        ours = tiny(ids).log_softmax(-1)
        ref = tiny_hf(ids).logits.log_softmax(-1)
    # Compatibility mode centres the unembedding, which shifts logits by a per-position constant.
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_bridge_matches_transformers_on_bundled(bundled, bundled_hf):
    ids = bundled.to_tokens("ROMEO: What light through yonder window breaks?")
    with torch.no_grad():
        ours = bundled(ids).log_softmax(-1)
        ref = bundled_hf(ids).logits.log_softmax(-1)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_load_is_eval_float32_without_grad(tiny):
    assert not tiny.training
    assert all(not p.requires_grad for p in tiny.parameters())
    assert all(p.dtype == torch.float32 for p in tiny.parameters())


def test_fp16_weights_compute_in_float32(bundled):
    from safetensors import safe_open

    from probes.core.load import BUNDLED_DIR

    with safe_open(str(BUNDLED_DIR / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16  # stored in fp16
    assert bundled.cfg.dtype == torch.float32
    assert next(bundled.parameters()).dtype == torch.float32


def test_dtype_option(tiny_dir):
    m = probes.load(str(tiny_dir), dtype="bfloat16")
    assert next(m.parameters()).dtype == torch.bfloat16


def test_bundled_model_shape(bundled):
    cfg = bundled.cfg
    assert cfg.n_layers >= 6 and 8000 <= cfg.d_vocab <= 8300 and cfg.n_ctx >= 256
    assert "blocks.0.hook_resid_pre" in bundled.hook_dict and "blocks.0.hook_attn_out" in bundled.hook_dict


def test_bundled_model_size_on_disk():
    from probes.core.load import BUNDLED_DIR

    size = sum(f.stat().st_size for f in BUNDLED_DIR.rglob("*") if f.is_file())
    assert size <= 20 * 2**20


def _copy(tiny_dir, tmp_path, name="ckpt"):
    dst = tmp_path / name
    shutil.copytree(tiny_dir, dst)
    return dst


def test_pickled_only_checkpoint_is_refused(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickled weights.*safetensors only"):
        probes.load(str(d))


def test_truncated_safetensors_is_refused(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        probes.load(str(d))


def test_missing_tokenizer_is_refused(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    for f in ("tokenizer.json", "vocab.json"):
        (d / f).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        probes.load(str(d))


def test_config_weight_mismatch_is_refused(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["n_layer"] = 6
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="config says 6 blocks"):
        probes.load(str(d))


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        probes.load(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        probes.load(str(tmp_path / "nope"))


def test_unreachable_hub_name_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        probes.load("gpt2-this-model-is-not-cached")
    msg = str(err.value)
    assert "gpt2-this-model-is-not-cached" in msg and "bundled model" in msg and "\n" not in msg


def test_bad_dtype_and_device():
    with pytest.raises(ModelLoadError, match="float32, float16, bfloat16"):
        probes.load(dtype="float64")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            probes.load(device="cuda")
    with pytest.raises(ModelLoadError, match="unknown device"):
        probes.load(device="banana")


@pytest.mark.parametrize("extra", [{}, {"tie_word_embeddings": False}, {"n_inner": 100}])
def test_param_count_is_the_checkpoints(extra):
    # The bridge's own parameters() double-count (split Q/K/V beside c_attn, an untied W_U).
    from transformers import GPT2Config, GPT2LMHeadModel

    from probes.core.info import checkpoint_params

    config = GPT2Config(vocab_size=300, n_positions=32, n_embd=48, n_layer=3, n_head=4, **extra)
    model = GPT2LMHeadModel(config)
    unique = {id(p): p.numel() for p in model.parameters()}  # a tied weight counts once
    assert checkpoint_params(config) == sum(unique.values())


def test_info_reports_the_checkpoints_param_count(tiny, tiny_hf, bundled):
    from probes.core.info import model_info
    from probes.core.load import BUNDLED_DIR

    assert model_info(tiny)["n_params"] == sum(p.numel() for p in tiny_hf.parameters())
    trained = json.loads((BUNDLED_DIR / "training.json").read_text())["n_params"]
    assert model_info(bundled)["n_params"] == trained


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_loaded_finds_any_non_finite_weight(tiny_dir, bad):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from probes.core.checkpoint import check_loaded
    from probes.errors import ModelLoadError

    hf = GPT2LMHeadModel.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    check_loaded("tiny", hf, tok)
    with torch.no_grad():
        hf.transformer.h[1].mlp.c_proj.weight[3, 7] = bad
    with pytest.raises(ModelLoadError, match="h.1.mlp.c_proj.weight"):
        check_loaded("tiny", hf, tok)
    check_loaded(
        "tiny", GPT2LMHeadModel.from_pretrained(tiny_dir).half(), tok
    )  # fp16 weights are checked too


def test_loads_in_two_threads_leave_transformerlens_as_it_was(tiny_dir):
    """Loads in two threads take turns (a boot sets process-wide state: the meta device, the loggers, and
    three of TransformerLens' weight-processing steps swapped for copy-free ones): both give the same
    model, and TransformerLens' own steps are back afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    from transformer_lens.weight_processing import ProcessWeights

    from probes.core.load import _COPYING_STEPS

    before = {name: ProcessWeights.__dict__[name] for name in _COPYING_STEPS}
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: probes.load(str(tiny_dir)), range(2))
    assert {name: ProcessWeights.__dict__[name] for name in _COPYING_STEPS} == before
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
