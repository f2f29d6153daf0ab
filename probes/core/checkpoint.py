"""Checkpoint validation: a model folder is checked (config, tensor names and shapes, tokenizer) before any
weights load, for any architecture.

A missing tensor would otherwise load as random weights, a pickled file could run code, and a
wrong config would fail deep inside transformers; each is one clear ModelLoadError here. The config
is checked without torch (`read_config`, `config_sizes`: what a command needs before it loads), and
the tensors against the model transformers builds from that config on the meta device
(`expected_tensors`): no hand-written tables.
"""

from __future__ import annotations

from pathlib import Path

from probes.errors import ModelLoadError
from probes.jsonread import parse_json, read_json

# The config keys of each size, by the names architectures give them (first found wins).
SIZE_KEYS = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_heads": ("num_attention_heads", "n_head"),
    "vocab_size": ("vocab_size",),
    "n_ctx": ("max_position_embeddings", "n_positions", "n_ctx"),
}
# The architectures probes is tested on (tests/test_architectures.py); others the bridge boots run on
# the hooked runner with a warning.
TESTED = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
}
# Buffers that some checkpoints carry beside the weights; they hold no weights.
_BUFFERS = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", ".masked_bias")


def read_config(path) -> dict:
    """The checked config.json of checkpoint folder `path` (torch-free)."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{path}: not a checkpoint directory (no config.json)")
    config = read_json(cfg_file, max_bytes=16 << 20, error=ModelLoadError, where=f"{path}/config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(
            f"{path}/config.json holds {type(config).__name__}, not a JSON object of settings"
        )
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise ModelLoadError(f"{path}/config.json names no model_type; is it a transformers checkpoint?")
    config_sizes(config, str(path))
    return config


def config_sizes(config: dict, where: str = "config.json") -> dict:
    """{n_layers, d_model, n_heads, vocab_size, n_ctx} of a config dict, each a checked positive integer."""
    sizes = {}
    for size, keys in SIZE_KEYS.items():
        key = next((k for k in keys if k in config), None)
        if key is None:
            raise ModelLoadError(
                f"{where}/config.json has no {keys[0]}; is it a decoder-only language model?"
            )
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ModelLoadError(f"{where}/config.json: {key} must be a positive integer, got {v!r}")
        sizes[size] = v
    if config["model_type"] == "gpt2" and sizes["d_model"] % sizes["n_heads"]:
        raise ModelLoadError(
            f"{where}/config.json: n_embd {sizes['d_model']} is not a multiple of n_head {sizes['n_heads']}"
        )
    for key in ("layer_norm_epsilon", "layer_norm_eps", "rms_norm_eps"):
        if key in config:
            eps = config[key]
            if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
                raise ModelLoadError(f"{where}/config.json: {key} must be a number in (0, 1), got {eps!r}")
    return sizes


SAFE_WEIGHTS = "model.safetensors"  # transformers' names: one file, or shards that an index names
SAFE_INDEX = "model.safetensors.index.json"


def check_files(path) -> list[Path]:
    """The weight files transformers will read (`model.safetensors`, or the shards its index names), with a
    tokenizer beside them; pickled weights are refused. Other safetensors files in the folder (a saved
    lens, a capture) are not the model's: they are ignored, with a note."""
    d = Path(path)
    weights = _weight_files(d)
    others = sorted(set(d.glob("*.safetensors")) - set(weights))
    if weights and others:
        import warnings

        from probes.core.prompt import ProbesWarning

        warnings.warn(
            f"{path}: ignoring {', '.join(p.name for p in others)}: not the model's weights "
            f"({SAFE_INDEX if (d / SAFE_INDEX).exists() else SAFE_WEIGHTS} names them)",
            ProbesWarning,
            stacklevel=2,
        )
    if not weights:
        pickled = sorted(f.name for pattern in ("*.bin", "*.pt", "*.pth") for f in d.glob(pattern))
        if pickled:
            raise ModelLoadError(
                f"{path} has only pickled weights ({', '.join(pickled)}); probes loads safetensors "
                "only, because unpickling can run arbitrary code. Convert them with transformers: "
                "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
            )
        if others:
            raise ModelLoadError(
                f"{path}: no {SAFE_WEIGHTS} (or {SAFE_INDEX}); {', '.join(p.name for p in others)} are not "
                "named as the model's weights"
            )
        raise ModelLoadError(f"{path}: no model weights (*.safetensors) found")
    if not any((d / f).is_file() for f in ("tokenizer.json", "tokenizer.model")) and not (
        (d / "vocab.json").is_file() and (d / "merges.txt").is_file()
    ):
        raise ModelLoadError(
            f"{path}: no tokenizer (tokenizer.json, tokenizer.model, or vocab.json + merges.txt)"
        )
    return weights


def _weight_files(d: Path) -> list[Path]:
    """The files transformers reads the weights from: the shards `model.safetensors.index.json` names, else
    `model.safetensors`; [] if neither."""
    if (d / SAFE_INDEX).exists():
        index = read_json(d / SAFE_INDEX, error=ModelLoadError)
        names = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise ModelLoadError(f"{d / SAFE_INDEX}: no weight_map of tensor names to files")
        files = sorted(set(names.values()))
        bad = [f for f in files if Path(f).name != f or not f.endswith(".safetensors")]
        if bad:
            raise ModelLoadError(f"{d / SAFE_INDEX}: {bad[0]!r} is not a safetensors file in the folder")
        missing = [f for f in files if not (d / f).is_file()]
        if missing:
            raise ModelLoadError(f"{d}: {missing[0]} is missing ({SAFE_INDEX} names it)")
        return [d / f for f in files]
    if (d / SAFE_WEIGHTS).is_file():
        return [d / SAFE_WEIGHTS]
    return []


def check_checkpoint(path) -> dict:
    """Validate a checkpoint folder before loading it (config, files, every tensor); return its config."""
    config = read_config(path)
    weights = check_files(path)
    check_tensors(Path(path), weights, config)
    return config


def architecture(config: dict, where: str) -> str:
    """The transformers class of a config, checked against what probes and the bridge can run."""
    arch = (config.get("architectures") or [None])[0] or TESTED.get(config["model_type"])
    if arch is None:
        raise ModelLoadError(f"{where}/config.json names no architectures; which model class is it?")
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    if not arch.endswith(("ForCausalLM", "LMHeadModel")):
        raise ModelLoadError(
            f"{where}: {arch} is not a causal language model; probes studies decoder-only models "
            f"(tested: {', '.join(TESTED.values())})"
        )
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            f"{where}: TransformerLens has no bridge adapter for {arch}, so probes cannot hook it "
            f"(tested: {', '.join(TESTED.values())})"
        )
    return arch


def expected_tensors(config: dict, where: str):
    """(required {name: shape}, optional names, model) of the model transformers builds from `config` on the
    meta device: tied copies and buffers may be absent from a checkpoint, nothing else may."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = AutoConfig.for_model(config["model_type"], **fields)
            with torch.device("meta"), _no_init():  # shapes only: initialising meta tensors is a waste
                model = AutoModelForCausalLM.from_config(cfg)
            model.tie_weights()  # which initialisation would have done
    except Exception as e:  # an unknown model_type or a config its class rejects: one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelLoadError(f"{where}/config.json: transformers cannot build this model ({first})") from None
    every = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    required = {k: tuple(p.shape) for k, p in model.named_parameters()}  # tied copies counted once
    return required, set(every) - set(required), model


def _no_init():
    """transformers' switch that skips weight initialisation (a third of a second for GPT-2 small, even on
    the meta device), where this transformers has it."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from contextlib import nullcontext as no_init_weights
    return no_init_weights()


def renamer(model, renames: bool = True):
    """How transformers renames a checkpoint's tensors as it loads them into `model` (GPT-NeoX's
    `embed_out` is `lm_head`), and the base model's prefix, which checkpoints may leave out; None where
    it converts tensors (fused experts, ...), so that names cannot be compared one to one. `renames=False`:
    the prefix alone (reading transformers' mapping costs a quarter of a second, the first time)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    transforms = []
    if renames:
        try:
            from transformers.conversion_mapping import get_model_conversion_mapping
            from transformers.core_model_loading import WeightRenaming, apply_renamings

            transforms = get_model_conversion_mapping(model)
        except Exception:  # a transformers without the mapping: names as saved
            transforms, WeightRenaming = [], ()
    named = [t for t in transforms if isinstance(t, WeightRenaming)]
    if len(named) != len(transforms):
        return None

    def rename(name: str) -> str:
        name = apply_renamings(name, named) if named else name
        return name.removeprefix(prefix + ".") if prefix else name

    return rename


def check_tensors(d: Path, weights: list[Path], config: dict) -> None:
    """Every tensor the model needs is in the files at its shape, and nothing else is."""
    arch = architecture(config, str(d))
    files = {f: safetensors_shapes(f) for f in weights}  # every header readable, every file whole
    required, optional, model = expected_tensors(config, str(d))
    sizes = config_sizes(config, str(d))
    problem = _mismatch(d, arch, sizes, files, required, optional, renamer(model, renames=False))
    if problem is None:
        return
    # Names as saved did not match: compare again as transformers renames them when it loads.
    rename = renamer(model)
    if rename is not None:
        problem = _mismatch(d, arch, sizes, files, required, optional, rename)
        if problem is not None:
            raise ModelLoadError(problem)


def _mismatch(d, arch, sizes, files, required, optional, short) -> str | None:
    """What is wrong with the files' tensors against the model's, in one line; None if nothing."""
    shapes = {short(k): shape for found in files.values() for k, shape in found.items()}
    required = {short(k): v for k, v in required.items()}
    optional = {short(k) for k in optional}
    blocks = {k.split(".")[1] for k in shapes if k.split(".")[0] in ("h", "layers") and k.count(".") > 1}
    if blocks and len(blocks) != sizes["n_layers"]:
        return f"{d}: config says {sizes['n_layers']} blocks, but the weights hold {len(blocks)}"
    # A missing tensor would load silently as random weights, so every one must be there, at its shape.
    missing = [k for k in required if k not in shapes]
    if missing:
        return f"{d}: the weights lack {len(missing)} tensor(s) {arch} needs, e.g. {', '.join(missing[:3])}"
    wrong = [f"{k} {shapes[k]} (config: {v})" for k, v in required.items() if shapes[k] != v]
    if wrong:
        return f"{d}: tensor shapes do not match config.json: {'; '.join(wrong[:2])}"
    extra = [k for k in shapes if k not in required and k not in optional and not k.endswith(_BUFFERS)]
    if extra:
        return (
            f"{d}: the weights hold {len(extra)} tensor(s) {arch} does not have, e.g. {', '.join(extra[:3])}"
        )
    return None


def safetensors_shapes(f: Path) -> dict[str, tuple]:
    """{tensor name: shape} from a safetensors file's header, read without torch; a truncated file raises."""
    import struct

    try:
        with open(f, "rb") as fh:
            # The header is JSON: its length is checked before anything parses it (safetensors too,
            # since every weights file is read here before transformers opens it).
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100 << 20:
                raise ValueError(f"a header of {n} bytes")
            raw = fh.read(n)
            if len(raw) < n:
                raise ValueError(f"a header of {n} bytes, {len(raw)} in the file")
            header = parse_json(raw, f"{f}: its header", error=ModelLoadError)
            if not isinstance(header, dict):
                raise ValueError(f"a header that holds {type(header).__name__}, not an object")
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
    rows = hf.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ModelLoadError(
            f"cannot load {name!r}: the tokenizer has {len(tokenizer)} tokens, "
            f"but the embedding only {rows} rows"
        )
    if len(tokenizer) < rows // 2:  # padding a vocabulary is common; half of it unused is not
        import warnings

        from probes.core.prompt import ProbesWarning

        warnings.warn(
            f"{name!r}: the tokenizer has only {len(tokenizer)} tokens for an embedding of "
            f"{rows} rows; is it the right tokenizer?",
            ProbesWarning,
            stacklevel=3,
        )
