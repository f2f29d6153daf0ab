"""Shared fixtures: a tiny GPT-2 checkpoint built at test time, loaded through the public path."""

from __future__ import annotations

import os

import pytest
import torch
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


def build_checkpoint(path, *, n_layer=4, n_embd=64, n_head=4, n_positions=64, seed=0, tokenizer_from=None):
    """Save a random GPT-2 (random LayerNorm weights and biases, so folding mistakes show)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from probes.core.load import BUNDLED_DIR

    tok = AutoTokenizer.from_pretrained(tokenizer_from or BUNDLED_DIR)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                else:
                    p.copy_(0.2 * torch.randn_like(p))
            else:
                # Larger than GPT-2's init so that attention and MLPs matter to the output.
                p.mul_(3.0)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


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

    return GPT2LMHeadModel.from_pretrained(BUNDLED_DIR, attn_implementation="eager", dtype=torch.float32).to(device).eval()
