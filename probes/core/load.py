"""Load a decoder-only model (bundled, hub name, local folder or GGUF file) as a TransformerLens bridge."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from probes.core.checkpoint import check_checkpoint, check_files, check_loaded, read_config
from probes.core.source import ModelSource, checksum_of
from probes.errors import ModelLoadError

BUNDLED_DIR = Path(__file__).parent.parent / "assets" / "shakespeare-gpt2"
BUNDLED_NAME = "shakespeare-gpt2"
DTYPES = ("float32", "float16", "bfloat16")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
# Hub files a GPT-2 checkpoint needs; pickled weights are deliberately not among them.
_HUB_PATTERNS = ["*.json", "*.safetensors", "merges.txt", "vocab.txt", "tokenizer.model", "*.jinja"]
# Loggers that talk while a model boots; quieted for the boot only (see `_quiet_boot`).
_NOISY_LOGGERS = ("transformer_lens",)


def source_of(model) -> ModelSource:
    """The ModelSource of a bridge returned by `probes.load` (a best guess for other bridges)."""
    from probes.core.state import state_of

    return state_of(model).source


def checkpoint_config(model: str | os.PathLike | None) -> dict:
    """The checked config.json of `model` (as `load` takes it), read without loading any weights.

    Commands call this first, so a layer spec or position that cannot fit fails in a second,
    before a 10-20 s load. `load` checks the tensors too.
    """
    src = resolve(model)
    if src.kind == "gguf":
        return gguf_config(src)
    config = read_config(src.path)
    check_files(src.path)
    return config


def gguf_config(src: ModelSource) -> dict:
    """A GGUF file's config: its conversion's, or read from its metadata (seconds, not a conversion)."""
    from probes.core.gguf import MARKER, cache_root, require_gguf

    done = cache_root() / src.checksum
    if (done / MARKER).is_file():
        return read_config(done)
    require_gguf()
    with _quiet_boot():
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(Path(src.path).parent, gguf_file=Path(src.path).name)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ModelLoadError(f"cannot read GGUF file {src.path}: {first}") from None
    return config.to_dict()


def check_dtype(dtype) -> None:
    """A dtype name from DTYPES (or None, or a torch.dtype), checked without importing torch."""
    if dtype is not None and type(dtype).__name__ != "dtype" and str(dtype) not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")


def parse_dtype(dtype):
    """torch dtype from None, a torch.dtype or one of DTYPES."""
    check_dtype(dtype)
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, str(dtype))


def parse_device(device):
    """A checked torch.device: 'cuda' without a GPU is an error, not a crash later on."""
    import re

    if (
        device is not None
        and isinstance(device, str)
        and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device.strip())
    ):
        raise ModelLoadError(
            f"unknown device {device!r}; use cpu, cuda, cuda:N or mps"
        )  # before importing torch
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device={device}: no CUDA GPU is available on this machine; use device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device={device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device={device}: MPS is not available on this machine; use device=cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or mps")
    return dev


def resolve(model: str | os.PathLike | None) -> ModelSource:
    """Find the checkpoint directory for a model argument, downloading hub names if possible."""
    if model is None or str(model) in ("", BUNDLED_NAME):
        if not BUNDLED_DIR.is_dir():
            raise ModelLoadError(f"the bundled model is missing from {BUNDLED_DIR}; reinstall probes")
        return ModelSource(BUNDLED_NAME, "bundled", str(BUNDLED_DIR))
    text = str(model)
    path = Path(text).expanduser()
    looks_like_path = (
        path.exists() or text.startswith((".", "/", "~")) or os.sep in text and not _is_hub_id(text)
    )
    if looks_like_path:
        if not path.exists():
            raise ModelLoadError(f"model directory {text!r} does not exist")
        if path.is_file() and path.suffix.lower() == ".gguf":
            return ModelSource(text, "gguf", str(path.resolve()))
        if not path.is_dir():
            raise ModelLoadError(
                f"model {text!r} is a file; pass the checkpoint directory holding config.json, "
                "or a .gguf file"
            )
        return ModelSource(text, "local", str(path.resolve()))
    return ModelSource(text, "hub", _download(text))


@contextmanager
def _no_widget_notice():
    """Without tqdm's "IProgress not found ... ipywidgets" warning, which the Hugging Face libraries' import
    of `tqdm.auto` prints in a notebook lacking ipywidgets (probes draws no tqdm bar)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        yield


def _is_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not Path(text).exists()


def _download(name: str) -> str:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError

        return snapshot_download(name, allow_patterns=_HUB_PATTERNS)
    except HFValidationError:
        raise ModelLoadError(
            f"{name!r} is neither a local directory nor a valid Hugging Face model name"
        ) from None
    except Exception as e:  # offline, not cached, no such repo, gated: all one message
        cause = _sentences(str(e)) or type(e).__name__
        if "Name or service not known" in str(e) or "cannot find the appropriate snapshot" in str(e):
            cause = "the Hugging Face Hub cannot be reached and the model is not in the local cache"
        raise ModelLoadError(
            f"cannot load {name!r} from the Hugging Face Hub: {cause}; "
            "use the bundled model (no model given) or a local checkpoint directory (model=./path)"
        ) from None


def _sentences(text: str, limit: int = 300) -> str:
    """The first whole sentences of an error message, on one line, within about `limit` characters.

    Never cut mid-sentence: the first sentence is kept whole however long, later ones only if they fit.
    """
    import re

    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    out = parts[0]
    for part in parts[1:]:
        if len(out) + 1 + len(part) > limit:
            break
        out += " " + part
    return out.rstrip(".")


def load(
    model: str | os.PathLike | None = None,
    *,
    device=None,
    dtype=None,
    device_map: str | dict | None = None,
    n_devices: int | None = None,
):
    """Load a decoder-only language model as a TransformerLens `TransformerBridge` in compatibility mode.

    `model` is None (the bundled Shakespeare model), a hub name (`gpt2`, `EleutherAI/pythia-70m`, ...),
    a local checkpoint directory (config.json + *.safetensors + tokenizer) or a GGUF file (dequantised
    once into the probes cache, `probes.core.gguf`). GPT-2, Llama, GPT-NeoX, Qwen2 and Gemma 2 are
    tested; other causal models the bridge has an adapter for load with a warning. The bridge is in eval
    mode with gradients off, computes in float32 unless `dtype` says otherwise, and exposes
    HookedTransformer hook names (`blocks.{i}.hook_resid_pre`, ...). `device_map` / `n_devices`
    pass through to TransformerLens (accelerate) for models larger than one GPU.
    """
    with _LOADING, _no_widget_notice():  # transformers' first import may come in the checks below
        return _load(model, device, dtype, device_map, n_devices)


def _load(model, device, dtype, device_map, n_devices):
    from probes.core import distributed

    torch_dtype = parse_dtype(dtype)
    multi = device_map is not None or n_devices is not None
    device = distributed.device_for(device)  # under torchrun, cuda is each rank's own GPU
    dev = None if multi else parse_device(device)
    src = resolve(model)
    distributed.start(None if dev is None else str(dev))  # under torchrun: join the other ranks
    checksum_of(src.path)  # hashed while the model boots
    folder = src.folder
    config = check_checkpoint(folder)
    _warn_untested(src.name, config)

    import torch

    with _quiet_boot():  # before TransformerLens' import, which sets transformers' verbosity for good
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            # Load the HF model ourselves on every path, so only safetensors are ever read (never a
            # pickled .bin beside them), and eager attention is used (the hooks need attention patterns).
            placement = _placement(device_map, n_devices) if multi else {}
            hf = AutoModelForCausalLM.from_pretrained(
                folder, use_safetensors=True, attn_implementation="eager", dtype=torch_dtype, **placement
            )
            check_loaded(src.name, hf, tokenizer)
            if multi:
                bridge = TransformerBridge.boot_transformers(
                    folder, hf_model=hf, tokenizer=tokenizer, dtype=torch_dtype
                )
                # Inputs go where the embedding lives; TransformerLens may have guessed cuda for a map
                # that keeps the embedding on the CPU.
                bridge.cfg.device = str(hf.get_input_embeddings().weight.device)
            else:
                bridge = TransformerBridge.boot_transformers(
                    folder, hf_model=hf.to(dev), tokenizer=tokenizer, device=dev, dtype=torch_dtype
                )
            with _no_weight_copies():
                bridge.enable_compatibility_mode(disable_warnings=True)
            _own_memory(bridge)
            bridge.eval()
            bridge.requires_grad_(False)
            from probes.core.kvcache import install_cache_adapter

            install_cache_adapter(bridge)
            # The bridge wires some internal capture hooks lazily on the first forward; run one now so
            # the hook set a caller sees (and our hook-hygiene checks count) is the steady one.
            with torch.no_grad():
                bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0
                bridge.original_model(input_ids=torch.tensor([[bos]], device=bridge.cfg.device or "cpu"))
        except ModelLoadError:
            raise
        except (
            Exception
        ) as e:  # tokenizers, accelerate and CUDA raise plain Exceptions too; all are one line here
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ModelLoadError(f"cannot load {src.name!r} from {src.path}: {first}") from None
    from probes.core.hooks import hook_keys
    from probes.core.state import state_of

    st = state_of(bridge)  # made by the cache adapter above
    st.source = src
    st.baseline = hook_keys(bridge)  # the model's own hooks; anything beyond them later is a probe's
    return bridge


def _warn_untested(name: str, config: dict) -> None:
    from probes.core.checkpoint import TESTED

    if config["model_type"] not in TESTED:
        import warnings

        from probes.core.prompt import ProbesWarning

        warnings.warn(
            f"{name!r} is a {config['model_type']} model; probes is tested on "
            f"{', '.join(TESTED)} and runs others through the bridge's hooks untested",
            ProbesWarning,
            stacklevel=3,
        )


def _placement(device_map, n_devices) -> dict:
    """from_pretrained's keywords for a model spread over devices: `device_map` as given, or the first
    `n_devices` GPUs."""
    if device_map is not None:
        return {"device_map": device_map}
    import torch

    if not isinstance(n_devices, int) or n_devices < 1 or n_devices > torch.cuda.device_count():
        raise ModelLoadError(
            f"n_devices={n_devices!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    memory = {i: torch.cuda.get_device_properties(i).total_memory for i in range(n_devices)}
    return {"device_map": "auto", "max_memory": memory}


# TransformerLens' weight processing: the steps that begin by cloning the whole state dict.
_COPYING_STEPS = ("fold_layer_norm", "center_unembed", "fold_value_biases")
# One load at a time in a process: a boot sets process-wide state for its duration (the meta device while
# the checks build a model, the libraries' loggers, the steps above), and threads gain nothing (the GIL).
_LOADING = threading.RLock()


@contextmanager
def _no_weight_copies():
    """TransformerLens' weight processing without its three whole-model copies: the same numbers, faster.

    Each of `_COPYING_STEPS` starts with `{k: v.clone() ...}` so as to leave its input dict alone, then
    builds every changed weight as a new tensor (none is changed in place). Here the input is the
    bridge's own state dict, which nobody reads afterwards, so the copies only cost time and memory: 2 GB
    and about 0.4 s of a 2.4 s GPT-2-small load on a quiet machine, much more under memory pressure.
    For the duration of the boot each step receives its weights as `_Shared` tensors, whose `clone()`
    hands back the same storage; the step's first line turns them into plain tensors again.
    `tests/test_architectures.py` checks, on every tested architecture and in float16 too, that the
    processed weights equal TransformerLens' own, bit for bit.
    """
    import torch
    from transformer_lens.weight_processing import ProcessWeights

    class _Shared(torch.Tensor):
        def clone(self, *args, **kwargs):
            return self.as_subclass(torch.Tensor)

    def sharing(step):
        def call(state_dict, *args, **kwargs):
            shared = {
                k: v.as_subclass(_Shared) if type(v) is torch.Tensor else v for k, v in state_dict.items()
            }
            return step(shared, *args, **kwargs)

        return staticmethod(call)

    saved = {name: ProcessWeights.__dict__[name] for name in _COPYING_STEPS}
    try:
        for name, step in saved.items():
            setattr(ProcessWeights, name, sharing(step.__func__))
        yield
    finally:
        for name, step in saved.items():
            setattr(ProcessWeights, name, step)


def _own_memory(bridge) -> None:
    """Give each weight still in the checkpoint's memory-mapped file (the ones weight processing left as they
    were: a Llama's o_proj and down_proj, for instance) memory of its own, as TransformerLens' copies did:
    a view into the mapped file is misaligned, and its forward measured 6-12% slower."""
    import torch

    for p in bridge.original_model.parameters():
        if not p.untyped_storage().resizable():  # memory torch did not allocate: the file's
            p.data = p.data.clone(memory_format=torch.contiguous_format)


@contextmanager
def _quiet_boot():
    """Silence what booting a model prints, for the boot only; the host's settings come back exactly.

    transformers draws a "Loading weights" progress bar per checkpoint, and TransformerLens logs
    through its own loggers. Only those are touched, and each is put back as it was in `finally`:
    the library does not change loggers or progress bars the host owns (the CLI quiets more, for
    its own process, in `probes.cli.app.main`).
    """
    import warnings

    from huggingface_hub.utils.tqdm import progress_bar_states
    from transformers.utils import logging as hf_logging

    loggers = {name: logging.getLogger(name) for name in _NOISY_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    verbosity = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    # transformers' switch also flips huggingface_hub's for every progress bar: saved whole.
    hub_bars = dict(progress_bar_states)
    try:
        for logger in loggers.values():
            logger.setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
        if bar:
            with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS=0 refuses, with a warning
                warnings.simplefilter("ignore")
                hf_logging.disable_progress_bar()
        yield
    finally:
        if bar:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hf_logging.enable_progress_bar()
        progress_bar_states.clear()
        progress_bar_states.update(hub_bars)
        hf_logging.set_verbosity(verbosity)
        for name, logger in loggers.items():
            logger.setLevel(levels[name])
