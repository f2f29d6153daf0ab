"""Capture per-layer states: record the requested hook points of one prompt (or generation).

Recording attaches one hook per requested name for a single forward (or for each KV-cached
generation step, keeping only the new positions) and assembles an `Activations`; see
`probes.activations` for hook names, shapes, what skipped blocks record, and the file format.
"""

from __future__ import annotations

import json
from typing import Iterable

import torch

from probes.activations import (
    _KEYED_PAD,
    FORMAT,
    GENERATE_OPTIONS,
    Activations,
    resolve_hooks,
    split_name,
)
from probes.decode import StepInfo, decode
from probes.errors import ProbesError
from probes.hooks import attached
from probes.layers import parse_layers
from probes.prompt import bos_id, encode, read_prompt, token_strings
from probes.sampling import SamplingSettings, pick_token

_SKIPPED_FIRES = ("hook_resid_pre", "hook_resid_post", "hook_in", "hook_out")
_SKIPPED_FROM = {"hook_resid_mid": "hook_resid_pre"}  # recorded from another hook of the block
_SKIPPED_ZERO = ("hook_attn_out", "hook_mlp_out")  # the block adds nothing


def _recorder(store: dict[str, list[torch.Tensor]], key: str, info: StepInfo, keyed: bool):
    """A hook that appends the new positions of each forward call (batch axis dropped) to store[key]."""

    def record(t, hook):
        x = t[0]
        x = x[:, -info.fresh:] if keyed else x[-info.fresh:]  # (heads, new, key) or (new, ...)
        store.setdefault(key, []).append(x.detach().to("cpu", copy=True))

    return record


def _assemble(chunks: list[torch.Tensor], suffix: str, n_pos: int) -> torch.Tensor:
    if suffix in _KEYED_PAD:
        # Step k's rows see keys 0..P+k; pad every row to n_pos keys with what the causal mask
        # gives there (0 in the pattern, -inf in the scores): the lower-triangular (heads, pos, pos)
        # a full forward of the final sequence produces.
        pad = _KEYED_PAD[suffix]
        rows = [torch.nn.functional.pad(c, (0, n_pos - c.shape[-1]), value=pad) for c in chunks]
        return torch.cat(rows, dim=1)  # (heads, pos, pos)
    return torch.cat(chunks, dim=0)  # (pos, ...)


def _prompt_ids(model, prompt, bos: bool) -> tuple[str, list[int]]:
    """(text, token ids) of a prompt given as text (`FILE:path` reads a file) or as token ids (fed as given)."""
    if isinstance(prompt, str):
        text = read_prompt(prompt)
        return text, encode(model, text, bos=bos)
    if isinstance(prompt, torch.Tensor):
        prompt = prompt.flatten().tolist()
    ids = [int(i) for i in prompt]
    if not 0 < len(ids) <= model.cfg.n_ctx:
        raise ProbesError(f"a prompt of token ids must hold 1 to {model.cfg.n_ctx} ids (the context), got {len(ids)}")
    if not all(0 <= i < model.cfg.d_vocab for i in ids):
        raise ProbesError(f"token ids must lie in 0-{model.cfg.d_vocab - 1} (the vocabulary)")
    return model.tokenizer.decode(ids), ids


def capture(
    model,
    prompt: str | list[int],
    *,
    hooks: Iterable[str] | str = ("resid_pre", "resid_post"),
    layers=None,
    bos: bool = True,
    generate: int | None = None,
    **generate_options,
) -> Activations:
    """Record `hooks` at `layers` (a layer spec; None: every block) for `prompt`; only those hooks are recorded.

    `prompt` is text (`FILE:path` reads a file; BOS first if `bos`) or a list of token ids, fed as
    given. With `generate=N`, N tokens are sampled with the options and defaults of
    `probes.generate` (temperature, top_k, top_p, greedy, seed, stop_at_eos; the same seed draws
    the same tokens) and each new position is recorded as its KV-cached step computes it, without
    re-running the sequence. Works inside `probes.skip(...)`.
    """
    from probes.meta import model_meta

    n_layers = model.cfg.n_layers
    chosen = list(range(n_layers)) if layers is None else parse_layers(layers, n_layers)
    requested = hooks.split(",") if isinstance(hooks, str) else list(hooks)
    names = resolve_hooks(model, requested, chosen)
    sampler, settings = check_generation(generate, generate_options)
    text, ids = _prompt_ids(model, prompt, bos)
    if generate is not None and len(ids) + generate > model.cfg.n_ctx:
        # Past the context the window slides and every step sees other positions, so the states
        # would not be those of one sequence.
        raise ProbesError(
            f"the prompt has {len(ids)} tokens; {generate} more exceed the context of {model.cfg.n_ctx}. "
            f"Generate at most {model.cfg.n_ctx - len(ids)} tokens, or shorten the prompt"
        )
    meta = model_meta(model)
    plan, zeros, absent = _plan(names, set(meta["skipped_blocks"]))

    store: dict[str, list[torch.Tensor]] = {}
    info = StepInfo()
    new: list[int] = []
    recorders = [(src, _recorder(store, key, info, split_name(key)[1] in _KEYED_PAD)) for src, key in plan]
    with attached(model, recorders), torch.no_grad():
        if generate is None:
            for _ in decode(model, ids, 0, lambda logits: 0, info=info):
                pass  # max_new_tokens=0: the prompt's forward only
        else:
            gen = torch.Generator().manual_seed(settings["seed"])  # as probes.generate seeds it
            eos = model.tokenizer.eos_token_id
            stop = frozenset({eos}) if settings["stop_at_eos"] and eos is not None else frozenset()
            for token, _ in decode(model, ids, generate, lambda lg: pick_token(lg, sampler, gen), stop_ids=stop, info=info,
                                   feed_last=True):
                new.append(token)

    tokens = ids + new
    if new and settings["stop_at_eos"] and new[-1] == model.tokenizer.eos_token_id:
        tokens = tokens[:-1]  # the stop token is drawn but never fed back, so it has no states
    n_pos = len(tokens)
    tensors: dict[str, torch.Tensor] = {}
    for src, key in plan:
        if key not in store:
            raise ProbesError(f"hook {key!r} never fired: TransformerLens' bridge does not compute it for GPT-2; "
                              "choose another hook point (see `probes info`)")
        tensors[key] = _assemble(store[key], split_name(key)[1], n_pos)
    for name in zeros:
        tensors[name] = torch.zeros(n_pos, model.cfg.d_model, dtype=model.cfg.dtype)  # (pos, d_model)

    src, vers = meta["model_source"], meta["versions"]
    out = {
        "format": FORMAT,
        "model": meta["model"],
        "model_source": src["source"],
        "model_path": src["path"],
        "model_sha256": src["sha256"],
        "n_layers": str(n_layers),
        "d_model": str(model.cfg.d_model),
        "n_heads": str(model.cfg.n_heads),
        "dtype": str(model.cfg.dtype).removeprefix("torch."),
        "prompt": text,
        "bos": json.dumps(tokens[0] == bos_id(model)),  # whether position 0 is <|endoftext|>
        "n_prompt_tokens": str(len(ids)),
        "token_strings": json.dumps(token_strings(model, tokens), ensure_ascii=False),
        "hooks": json.dumps(requested),
        "layers": json.dumps(chosen),
        "skipped_blocks": json.dumps(meta["skipped_blocks"]),
        # What stands in for the hooks skipped blocks never fire (see the module docstring).
        "filled": json.dumps({**{k: "copy of resid_pre" for s, k in plan if s != k}, **{k: "zeros" for k in zeros}}),
        "absent": json.dumps(absent),
        # Compatibility mode: LayerNorm folded into the next weights, writing weights centred.
        "weights_processed": "true",
        "probes_version": str(vers.get("probes")),
        "transformer_lens_version": str(vers.get("transformer-lens")),
        "transformers_version": str(vers.get("transformers")),
        "torch_version": str(vers.get("torch")),
    }
    if generate is not None:
        out["generated"] = str(len(new))
        out["seed"] = str(settings["seed"])
        out["sampling"] = json.dumps(settings)
        out["generated_text"] = model.tokenizer.decode(new)
    return Activations(tensors, torch.tensor(tokens, dtype=torch.int64), out)


def check_generation(generate, options: dict):
    """(SamplingSettings, options completed with probes.generate's defaults); bad values raise."""
    import inspect

    from probes.generation import generate as reference

    unknown = sorted(set(options) - set(GENERATE_OPTIONS))
    if unknown:
        raise ProbesError(f"unknown option(s) {', '.join(unknown)}; capture accepts {', '.join(GENERATE_OPTIONS)}")
    if generate is not None and (isinstance(generate, bool) or not isinstance(generate, int) or generate < 1):
        raise ProbesError(f"generate must be a number of tokens >= 1, got {generate!r}")
    if options and generate is None:
        raise ProbesError(f"sampling options ({', '.join(options)}) need generate=N")
    # Defaults read off probes.generate so that both draw the same tokens for a seed.
    params = inspect.signature(reference).parameters
    settings = {k: options.get(k, params[k].default) for k in GENERATE_OPTIONS}
    sampler = SamplingSettings(settings["temperature"], settings["top_k"], settings["top_p"], settings["greedy"])
    return sampler, settings


def _plan(names: list[str], skipped: set[int]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """([(hook to attach, name to store under)], names to fill with zeros, names absent) for skipped blocks."""
    plan, zeros, absent = [], [], []
    for name in names:
        block, suffix = split_name(name)
        if block not in skipped or suffix in _SKIPPED_FIRES:
            plan.append((name, name))
        elif suffix in _SKIPPED_FROM:
            plan.append((f"blocks.{block}.{_SKIPPED_FROM[suffix]}", name))
        elif suffix in _SKIPPED_ZERO:
            zeros.append(name)
        else:
            absent.append(name)
    return plan, zeros, absent
