"""Incremental decoding: KV-cached forward steps, the choice of decoder, and the loop that slides past the context."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from probes.core.kvcache import SkipTolerantCache


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
        from probes.core.kvcache import install_cache_adapter

        self.adapters = install_cache_adapter(self.model)  # empty for models from probes.load
        return self

    def __exit__(self, *exc):
        from probes.core.kvcache import remove_cache_adapter

        remove_cache_adapter(self.adapters)
        self.adapters = []

    def reset(self) -> None:
        self.cache = SkipTolerantCache()

    def __call__(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        return forward_step(self.model, ids, self.cache, start)


def choose_decoder(model, fast: bool | None = None):
    """The one place that decides how a model decodes now.

    The fused hook-free decoder when nothing beyond skips is attached (and `fast` is not False),
    else the hooked bridge. Making the fast decoder fuses its weights (once per weight version),
    so callers that time decoding choose the decoder before starting the clock.
    """
    from probes.core import fastpath
    from probes.core.layers import complement
    from probes.core.skip import skipped_blocks

    if fast is not False and fastpath.eligible(model):
        return fastpath.FastDecoder(model, complement(skipped_blocks(model), model.cfg.n_layers))
    return HookedDecoder(model)


@torch.no_grad()  # as a decorator it covers each resumption only, not the caller's code in between
def decode(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    pick: Callable[[torch.Tensor], int],
    *,
    decoder=None,
    stop_ids: set[int] | frozenset = frozenset(),
    on_forward: Callable[[int, int], None] | None = None,
    feed_last: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (token id, logits it was drawn from) for up to `max_new_tokens` tokens.

    `pick` maps the last position's logits (vocab,) to a token id; `decoder` is what
    `choose_decoder` returned (chosen here when None). The prompt must already fit the context
    (see `probes.core.prompt.encode`). Once the sequence outgrows the context, the window slides:
    the last n_ctx tokens are recomputed from scratch each step, as nanoGPT's crop does, because
    learned positions shift with the window. `on_forward(start, fresh)` is called before each
    forward call with the first position it computes and how many of its last positions are new
    (the whole prompt, then 1), for hooks that record during generation. With `feed_last` the
    last token is fed through the model too (its logits are unused), so such hooks see its states.
    """
    n_ctx = model.cfg.n_ctx
    device = model.cfg.device or "cpu"
    ids = list(prompt_ids)
    assert 0 < len(ids) <= n_ctx, "prompt must be encoded and cropped first"
    step = decoder if decoder is not None else choose_decoder(model)

    def run(chunk: list[int], start: int, fresh: int) -> torch.Tensor:
        if on_forward is not None:
            on_forward(start, fresh)
        return step(torch.tensor([chunk], device=device), start)[0, -1]  # (vocab,)

    with step:
        step.reset()  # a decoder may serve several samples in turn; each starts from an empty cache
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
