"""Checkpoint validation: a GPT-2 folder is checked (config, tensor names and shapes, tokenizer) before any
weights load.

A missing tensor would otherwise load as random weights, a pickled file could run code, and a
wrong config would fail deep inside transformers; each is one clear ModelLoadError here.
"""

from __future__ import annotations

import json
from pathlib import Path

from probes.errors import ModelLoadError


def check_checkpoint(path: str) -> dict:
    """Validate a GPT-2 checkpoint directory before loading it; return its config as a dict."""
    d = Path(path)
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{path}: not a checkpoint directory (no config.json)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ModelLoadError(f"{path}/config.json is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(
            f"{path}/config.json holds {type(config).__name__}, not a JSON object of settings"
        )
    if config.get("model_type") != "gpt2":
        raise ModelLoadError(
            f"{path}: model_type is {config.get('model_type')!r}; probes supports GPT-2-family checkpoints "
            "(model_type 'gpt2')"
        )
    _check_config_values(path, config)
    weights = sorted(d.glob("*.safetensors"))
    if not weights:
        pickled = (
            [f.name for f in d.glob("*.bin")]
            + [f.name for f in d.glob("*.pt")]
            + [f.name for f in d.glob("*.pth")]
        )
        if pickled:
            raise ModelLoadError(
                f"{path} has only pickled weights ({', '.join(sorted(pickled))}); probes loads safetensors "
                "only, because unpickling can run arbitrary code. Convert them with transformers: "
                "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
            )
        raise ModelLoadError(f"{path}: no model weights (*.safetensors) found")
    if not (d / "tokenizer.json").is_file() and not (
        (d / "vocab.json").is_file() and (d / "merges.txt").is_file()
    ):
        raise ModelLoadError(f"{path}: no tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    _check_weights(d, weights, config)
    return config


def _check_config_values(path: str, config: dict) -> None:
    """The sizes GPT-2 needs are positive integers, and the norm's epsilon a small positive number."""
    for key in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions"):
        v = config.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ModelLoadError(f"{path}/config.json: {key} must be a positive integer, got {v!r}")
    if config["n_embd"] % config["n_head"]:
        raise ModelLoadError(
            f"{path}/config.json: n_embd {config['n_embd']} is not a multiple of n_head {config['n_head']}"
        )
    eps = config.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ModelLoadError(
            f"{path}/config.json: layer_norm_epsilon must be a number in (0, 1), got {eps!r}"
        )


def safetensors_shapes(f: Path) -> dict[str, tuple]:
    """{tensor name: shape} from a safetensors file's header, read without torch; a truncated file raises."""
    import struct

    try:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100 << 20:
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(fh.read(n))
        size = f.stat().st_size
        shapes, end = {}, 8 + n
        for name, info in header.items():
            if name != "__metadata__":
                shapes[name] = tuple(info["shape"])
                end = max(end, 8 + n + info["data_offsets"][1])
        if end > size:
            raise ValueError(f"the tensors need {end} bytes, the file has {size}")
        return shapes
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        raise ModelLoadError(
            f"{f}: unreadable safetensors file "
            f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); is it truncated?"
        ) from None


def _check_weights(d: Path, weights: list[Path], config: dict) -> None:
    shapes = {}
    for f in weights:
        for k, shape in safetensors_shapes(f).items():
            shapes[k.removeprefix("transformer.")] = shape
    wte = shapes.get("wte.weight")
    if wte is None:
        raise ModelLoadError(f"{d}: the weights have no wte.weight; not a GPT-2 checkpoint")
    expect = (config.get("vocab_size"), config.get("n_embd"))
    if wte != expect:
        raise ModelLoadError(f"{d}: config says vocab x d_model = {expect}, but wte.weight is {wte}")
    n_blocks = len({k.split(".")[1] for k in shapes if k.startswith("h.")})
    if n_blocks != config.get("n_layer"):
        raise ModelLoadError(
            f"{d}: config says {config.get('n_layer')} blocks, but the weights hold {n_blocks}"
        )
    expected = gpt2_tensor_shapes(config)
    # A missing tensor would load silently as random weights, so every one must be there, at its shape.
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise ModelLoadError(
            f"{d}: the weights lack {len(missing)} tensor(s) GPT-2 needs, e.g. {', '.join(missing[:3])}"
        )
    wrong = [f"{k} {shapes[k]} (config: {v})" for k, v in expected.items() if shapes[k] != v]
    if wrong:
        raise ModelLoadError(f"{d}: tensor shapes do not match config.json: {'; '.join(wrong[:2])}")
    extra = [k for k in shapes if k not in expected and k != "lm_head.weight" and not k.endswith(_BUFFERS)]
    if extra:
        raise ModelLoadError(
            f"{d}: the weights hold {len(extra)} tensor(s) GPT-2 does not have, e.g. {', '.join(extra[:3])}"
        )


# Causal-mask buffers that older GPT-2 checkpoints carry; they hold no weights.
_BUFFERS = (".attn.bias", ".attn.masked_bias")


def gpt2_tensor_shapes(config: dict) -> dict[str, tuple]:
    """Every tensor of a GPT-2 checkpoint (without the `transformer.` prefix) and its shape, from
    config.json."""
    D, V, P = config["n_embd"], config["vocab_size"], config["n_positions"]
    inner = config.get("n_inner") or 4 * D
    shapes = {"wte.weight": (V, D), "wpe.weight": (P, D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    block = {
        "ln_1.weight": (D,),
        "ln_1.bias": (D,),
        "attn.c_attn.weight": (D, 3 * D),
        "attn.c_attn.bias": (3 * D,),
        "attn.c_proj.weight": (D, D),
        "attn.c_proj.bias": (D,),
        "ln_2.weight": (D,),
        "ln_2.bias": (D,),
        "mlp.c_fc.weight": (D, inner),
        "mlp.c_fc.bias": (inner,),
        "mlp.c_proj.weight": (inner, D),
        "mlp.c_proj.bias": (D,),
    }
    for i in range(config["n_layer"]):
        shapes.update({f"h.{i}.{k}": v for k, v in block.items()})
    return shapes


def check_loaded(name: str, hf, tokenizer) -> None:
    """What only the loaded model shows: weights that are not finite, a tokenizer bigger than the
    embedding."""
    import torch

    def finite(p) -> bool:  # min and max propagate NaN and hold any inf: one pass, no (p.shape) bool tensor
        lo, hi = torch.aminmax(
            p.detach().float() if p.dtype in (torch.float16, torch.bfloat16) else p.detach()
        )
        return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))

    bad = [name for name, p in hf.named_parameters() if p.numel() and not finite(p)]
    if bad:
        raise ModelLoadError(
            f"cannot load {name!r}: {len(bad)} weight tensor(s) hold NaN or inf, e.g. {bad[0]}"
        )
    if len(tokenizer) > hf.config.vocab_size:
        raise ModelLoadError(
            f"cannot load {name!r}: the tokenizer has {len(tokenizer)} tokens, "
            f"but the embedding only {hf.config.vocab_size} rows"
        )
    if len(tokenizer) < hf.config.vocab_size // 2:  # padding a vocabulary is common; half of it unused is not
        import warnings

        from probes.core.prompt import ProbesWarning

        warnings.warn(
            f"{name!r}: the tokenizer has only {len(tokenizer)} tokens for an embedding of "
            f"{hf.config.vocab_size} rows; is it the right tokenizer?",
            ProbesWarning,
            stacklevel=3,
        )
