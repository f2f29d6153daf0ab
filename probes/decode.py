"""Incremental decoding: KV-cached forward steps through the hooked model, sliding past the context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from probes.kvcache import SkipTolerantCache


@dataclass
class StepInfo:
    """What the current forward call computes, for hooks that record during generation.

    `fresh` is how many of the call's last positions are new (the prompt on the first call,
    then 1); after the window slides the whole window is recomputed but only 1 position is new.
    """

    fresh: int = 0
    calls: int = 0
    positions: list[int] = field(default_factory=list)


def forward_step(model, ids: torch.Tensor, cache, start: int) -> torch.Tensor:
    """Logits (batch, pos, vocab) for `ids` (batch, pos) at positions start.. with the cache."""
    pos = torch.arange(start, start + ids.shape[1], device=ids.device)[None]  # (1, pos)
    # Explicit positions: transformers would read them off cache layer 0, which is empty when
    # block 0 is skipped.
    out = model.original_model(input_ids=ids, cache=cache, use_cache=cache is not None, position_ids=pos)
    return out.logits


class HookedDecoder:
    """KV-cached forward steps through the bridge, so every hook and probe sees them."""

    def __init__(self, model):
        self.model = model
        self.cache = SkipTolerantCache()
        self.adapters: list = []

    def __enter__(self):
        from probes.kvcache import install_cache_adapter

        self.adapters = install_cache_adapter(self.model)  # empty for models from probes.load
        return self

    def __exit__(self, *exc):
        from probes.kvcache import remove_cache_adapter

        remove_cache_adapter(self.adapters)
        self.adapters = []

    def reset(self) -> None:
        self.cache = SkipTolerantCache()

    def __call__(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        return forward_step(self.model, ids, self.cache, start)


def decoder_for(model, fast: bool | None = None):
    """The fast hook-free decoder when no probe hooks are attached (and `fast` allows), else the hooked one."""
    from probes import fastpath
    from probes.layers import complement
    from probes.skipping import skipped_layers

    if fast is not False and fastpath.eligible(model):
        return fastpath.FastDecoder(model, complement(skipped_layers(model), model.cfg.n_layers))
    return HookedDecoder(model)


@torch.no_grad()  # as a decorator it covers each resumption only, not the caller's code in between
def decode(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    pick: Callable[[torch.Tensor], int],
    *,
    stop_ids: set[int] | frozenset = frozenset(),
    info: StepInfo | None = None,
    fast: bool | None = None,
    feed_last: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (token id, logits it was drawn from) for up to `max_new_tokens` tokens.

    `pick` maps the last position's logits (vocab,) to a token id. The prompt must already fit
    the context (see `probes.prompt.encode`). Once the sequence outgrows the context, the window
    slides: the last n_ctx tokens are recomputed from scratch each step, as nanoGPT's crop does,
    because learned positions shift with the window. With `feed_last` the last token is fed
    through the model too (its logits are unused), so recording hooks see its states.
    """
    n_ctx = model.cfg.n_ctx
    device = model.cfg.device or "cpu"
    info = info if info is not None else StepInfo()
    ids = list(prompt_ids)
    assert 0 < len(ids) <= n_ctx, "prompt must be encoded and cropped first"

    step = decoder_for(model, fast)

    def run(chunk: list[int], start: int, fresh: int) -> torch.Tensor:
        info.fresh, info.calls = fresh, info.calls + 1
        info.positions = list(range(start, start + len(chunk)))
        t = torch.tensor([chunk], device=device)
        return step(t, start)[0, -1]  # (vocab,)

    with step:
        logits = run(ids, 0, len(ids))
        for i in range(max_new_tokens):
            token = pick(logits)
            yield token, logits
            ids.append(token)
            if token in stop_ids or (i == max_new_tokens - 1 and not feed_last):
                return  # no forward for a token nobody will draw (`feed_last`: hooks want its states)
            if len(ids) > n_ctx:
                step.reset()
                logits = run(ids[-n_ctx:], 0, 1)
            else:
                logits = run([token], len(ids) - 1, 1)
