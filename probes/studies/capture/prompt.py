"""Capture per-layer states: record the requested hook points of one prompt (or of its generation).

Recording attaches one hook per requested name for a single forward (or for each KV-cached
generation step, keeping only the new positions) and assembles an `Activations`; see
`probes.studies.capture.activations` for hook names, shapes, what skipped blocks record, and the file format.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from probes.core.decode import decode_rows, sample_rows
from probes.core.hooks import attached, resolve_hooks, split_name
from probes.core.layers import parse_layers
from probes.core.prompt import bos_id, prompt_ids, str_tokens
from probes.core.runner import runner_for
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError
from probes.io import parse_size
from probes.studies.capture.activations import Activations
from probes.studies.capture.format import CaptureMeta
from probes.studies.capture.record import KEYED_PAD, Recorder, hook_plan
from probes.studies.settings import capture_config


def _assemble(chunks: list[torch.Tensor], suffix: str, n_pos: int) -> torch.Tensor:
    if suffix in KEYED_PAD:
        # Step k's rows see keys 0..P+k; pad every row to n_pos keys with what the causal mask
        # gives there (0 in the pattern, -inf in the scores): the lower-triangular (heads, pos, pos)
        # a full forward of the final sequence produces.
        pad = KEYED_PAD[suffix]
        rows = [torch.nn.functional.pad(c, (0, n_pos - c.shape[-1]), value=pad) for c in chunks]
        return torch.cat(rows, dim=1)  # (heads, pos, pos)
    return torch.cat(chunks, dim=0)  # (pos, ...)


# A capture holds everything in memory (about three times the file while it is assembled and saved),
# so one larger than this is refused up front unless the caller raises the limit.
MAX_BYTES = 2 << 30


def estimate_bytes(model, names: list[str], n_pos: int) -> int:
    """About how many bytes the tensors of `names` take for `n_pos` positions (the file's size)."""
    cfg = model.cfg
    item = torch.empty((), dtype=cfg.dtype).element_size()
    per_name = {
        "attn.hook_pattern": cfg.n_heads * n_pos * n_pos,
        "attn.hook_attn_scores": cfg.n_heads * n_pos * n_pos,
        "mlp.hook_pre": n_pos * cfg.d_mlp,
        "mlp.hook_post": n_pos * cfg.d_mlp,
    }
    heads = n_pos * cfg.n_heads * cfg.d_head  # q, k, v, z
    total = 0
    for name in names:
        suffix = split_name(name)[1]
        total += per_name.get(
            suffix,
            heads
            if suffix in ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z")
            else n_pos * cfg.d_model,
        )
    return total * item


def check_size(model, names: list[str], n_pos: int, max_bytes: int | None) -> None:
    """Refuse, before any work, a capture whose tensors would pass `max_bytes` (None: no limit)."""
    need = estimate_bytes(model, names, n_pos)
    if max_bytes is not None and need > max_bytes:
        raise ProbesError(
            f"this capture would hold about {need / 2**30:.2f} GiB ({len(names)} tensors x {n_pos} "
            f"positions), more than the limit of {max_bytes / 2**30:.2f} GiB; capture fewer hooks or layers, "
            "or raise the limit with max_bytes=N (None: no limit)"
        )


def capture(
    model,
    prompt,
    *,
    hooks: Iterable[str] | str = ("resid_pre", "resid_post"),
    layers=None,
    bos: bool | None = None,
    generate: int | None = None,
    config: SamplingConfig | None = None,
    max_bytes: int | str | None = MAX_BYTES,
    out=None,
    store_dtype: str | None = None,
    shard_bytes: int | str | None = None,
    force: bool = False,
    progress=None,
    **overrides,
) -> Activations:
    """Record `hooks` at `layers` (a layer spec; None: every block) for `prompt`; only those hooks are
    recorded.

    A list of texts or a `Dataset` is captured to the folder `out` in shards, streamed, and a lazy
    `ShardedActivations` is returned (`probes.studies.capture.dataset`, which takes `store_dtype`,
    `shard_bytes`, `force` and `progress`).

    `prompt` is text (`FILE:path` reads a file; BOS first if `bos`, which defaults to the config's,
    True) or a list of token ids, fed as
    given. With `generate=N`, N tokens are sampled as `probes.generate` samples them (a
    SamplingConfig, or its fields as keywords: temperature, top_k, seed, ...; the same seed draws
    the same tokens) and each new position is recorded as its KV-cached step computes it, without
    re-running the sequence. Works inside `probes.skip(...)`. A capture estimated above `max_bytes`
    (2 GiB by default; None for no limit) is refused before any work, with its estimate.
    """
    from probes.core.dataset import Dataset
    from probes.core.skip import skipped_blocks
    from probes.meta import model_meta

    if isinstance(prompt, Dataset) or (
        isinstance(prompt, (list, tuple)) and all(isinstance(t, str) for t in prompt)
    ):
        from probes.studies.capture.dataset import capture_dataset

        if generate is not None or config is not None or overrides:
            raise ProbesError(
                "generate= and sampling options record one prompt; a dataset is captured from its texts only"
            )
        if out is None:
            raise ProbesError("capturing a dataset streams it to disk: give out= a folder")
        sized = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
        return capture_dataset(
            model,
            prompt,
            out=out,
            hooks=hooks,
            layers=layers,
            bos=True if bos is None else bos,
            store_dtype=store_dtype,
            force=force,
            progress=progress,
            **sized,
        )
    if out is not None or store_dtype is not None or shard_bytes is not None:
        raise ProbesError(
            "out=, store_dtype= and shard_bytes= are for a dataset (a list of texts or a Dataset); "
            "save one prompt's capture with acts.save(path)"
        )
    if max_bytes is not None:
        max_bytes = parse_size(max_bytes, "max_bytes")  # nan would compare as no limit at all
    n_layers = model.cfg.n_layers
    chosen = list(range(n_layers)) if layers is None else parse_layers(layers, n_layers)
    requested = hooks.split(",") if isinstance(hooks, str) else list(hooks)
    names = resolve_hooks(model, requested, chosen)
    cfg = capture_config(generate, config, overrides if bos is None else {**overrides, "bos": bos})
    bos = cfg.bos if cfg is not None else (True if bos is None else bos)
    text, ids = prompt_ids(model, prompt, bos=bos)
    if cfg is not None and len(ids) + generate > model.cfg.n_ctx:
        # Past the context the window slides and every step sees other positions, so the states
        # would not be those of one sequence.
        raise ProbesError(
            f"the prompt has {len(ids)} tokens; {generate} more exceed the context of {model.cfg.n_ctx}. "
            f"Generate at most {model.cfg.n_ctx - len(ids)} tokens, or shorten the prompt"
        )
    check_size(model, names, len(ids) + (generate or 0), max_bytes)
    plan, zeros, absent = hook_plan(names, set(skipped_blocks(model)))

    rec = Recorder()
    new: list[int] = []
    with attached(model, [(src, rec.hook(key)) for src, key in plan]), torch.no_grad():
        # With the recording hooks attached, the runner is the hooked one: every hook fires.
        decoder = runner_for(model).decoder()
        if cfg is None:
            for _ in decode_rows(model, [ids], 0, None, decoder=decoder, on_forward=rec.on_forward):
                pass  # no new tokens: the prompt's forward only
        else:
            (new,) = sample_rows(
                model, [ids], [cfg], [0], decoder=decoder, on_forward=rec.on_forward, feed_last=True
            )

    tokens = ids + new
    if new and cfg.stop_at_eos and new[-1] == model.tokenizer.eos_token_id:
        tokens = tokens[:-1]  # the stop token is drawn but never fed back, so it has no states
    n_pos = len(tokens)
    tensors: dict[str, torch.Tensor] = {}
    for _src, key in plan:
        if key not in rec.store:
            raise ProbesError(
                f"hook {key!r} never fired: TransformerLens' bridge does not compute it for GPT-2; "
                "choose another hook point (see `probes info`)"
            )
        # pop: each hook's chunks are freed as soon as they are joined, so the peak stays near one copy
        tensors[key] = _assemble(rec.store.pop(key), split_name(key)[1], n_pos)
    for name in zeros:
        tensors[name] = torch.zeros(n_pos, model.cfg.d_model, dtype=model.cfg.dtype)  # (pos, d_model)

    meta = model_meta(model)
    src = meta["model_source"]
    filled = {**{k: "copy of resid_pre" for s, k in plan if s != k}, **{k: "zeros" for k in zeros}}
    record = CaptureMeta(
        model=meta["model"],
        model_source=src["source"],
        model_path=src["path"],
        model_sha256=src["sha256"],
        n_layers=n_layers,
        d_model=model.cfg.d_model,
        n_heads=model.cfg.n_heads,
        dtype=str(model.cfg.dtype).removeprefix("torch."),
        prompt=text,
        bos=tokens[0] == bos_id(model),
        n_prompt_tokens=len(ids),
        str_tokens=str_tokens(model, tokens),
        hooks=requested,
        layers=chosen,
        skipped_blocks=meta["skipped_blocks"],
        filled=filled,
        absent=absent,
        versions=meta["versions"],
        generated=len(tokens) - len(ids),
        seed=cfg.seed if cfg else None,
        sampling=cfg.to_dict() if cfg else None,
        generated_text=model.tokenizer.decode(new) if cfg else None,
    )
    return Activations(tensors, torch.tensor(tokens, dtype=torch.int64), record)
