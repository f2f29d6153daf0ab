"""Incremental decoding: KV-cached forward steps, the choice of decoder, and the loop that slides past the
context."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from probes.core.kvcache import SkipTolerantCache
from probes.core.prompt import bos_id


def forward_step(model, ids: torch.Tensor, cache, start: int, positions=None, mask=None) -> torch.Tensor:
    """Logits (batch, pos, vocab) for `ids` (batch, pos) with the cache.

    Positions are start.. for every row, or `positions` (batch, pos) for padded rows; `mask`
    (batch, 1, pos, cached + pos), True where a query may attend, replaces the causal mask.
    """
    if positions is None:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)[None]  # (1, pos)
    # Explicit positions: transformers would read them off cache layer 0, which is empty when
    # block 0 is skipped.
    out = model.original_model(
        input_ids=ids, cache=cache, use_cache=cache is not None, position_ids=positions, attention_mask=mask
    )
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

    def __call__(self, ids: torch.Tensor, start: int, positions=None, mask=None) -> torch.Tensor:
        return forward_step(self.model, ids, self.cache, start, positions, mask)


def choose_decoder(model, fast: bool | None = None, row_skips: list[list[int]] | None = None, record=None):
    """The one place that decides how a model decodes now.

    The fused hook-free decoder when nothing beyond skips is attached (and `fast` is not False),
    else the hooked bridge. Making the fast decoder fuses its weights (once per weight version),
    so callers that time decoding choose the decoder before starting the clock. `row_skips`, the
    blocks each row of a batch skips besides the model's own skips, needs the fused decoder:
    without it the answer is None, and the caller runs one skip set at a time. So does
    `record(streams)` (see `FastDecoder`): without the fused decoder the answer is None, and the
    caller records through hooks on the bridge instead.
    """
    from probes.core import fastpath
    from probes.core.layers import complement
    from probes.core.skip import skipped_blocks

    n = model.cfg.n_layers
    if fast is not False and fastpath.eligible(model):
        base = set(skipped_blocks(model))
        if row_skips is None:
            return fastpath.FastDecoder(model, complement(sorted(base), n), record=record)
        return fastpath.FastDecoder(
            model, [], [complement(sorted(base | set(r)), n) for r in row_skips], record=record
        )
    return None if row_skips is not None or record is not None else HookedDecoder(model)


class Rows:
    """Left-padded rows of token ids and what a padded forward needs: positions and an attention mask.

    Rows of different lengths are padded on the left, so every row's newest token sits in the last
    column and one new column extends them all. Each row counts its positions from its own first
    real token (learned positions stay right), and no query attends to padding. A padding query
    attends to itself alone: a fully masked row would turn into NaN, which attention would then
    carry into every row through the padding's keys.
    """

    def __init__(self, rows: list[list[int]], pad: int, device):
        self.rows, self.pad, self.device = rows, pad, device

    def window(self, n_ctx: int):
        """(ids, positions, mask) of every row's last n_ctx tokens, padded: the fresh forward."""
        seqs = [r[-n_ctx:] for r in self.rows]
        T = self.width = max(map(len, seqs))
        if all(len(s) == T for s in seqs):
            self.valid = None
            return torch.tensor(seqs, device=self.device), None, None
        ids = torch.tensor([[self.pad] * (T - len(s)) + s for s in seqs], device=self.device)  # (batch, pos)
        self.valid = torch.tensor(
            [[False] * (T - len(s)) + [True] * len(s) for s in seqs], device=self.device
        )
        positions = (self.valid.long().cumsum(1) - 1).clamp(min=0)  # (batch, pos)
        causal = torch.ones(T, T, dtype=torch.bool, device=self.device).tril()
        own = torch.eye(T, dtype=torch.bool, device=self.device)
        mask = causal[None] & (self.valid[:, None, :] | own[None])  # (batch, query, key)
        self.last = positions[:, -1:]  # (batch, 1)
        return ids, positions, mask[:, None]  # mask (batch, 1, pos, pos)

    def step(self, tokens: list[int]):
        """(ids, positions, mask) feeding one new token per row after the cached ones."""
        ids = torch.tensor([[t] for t in tokens], device=self.device)  # (batch, 1)
        self.width += 1
        if self.valid is None:
            return ids, None, None
        self.valid = torch.cat([self.valid, self.valid.new_ones(len(tokens), 1)], 1)  # (batch, keys)
        self.last = self.last + 1
        return ids, self.last, self.valid[:, None, None, :]  # mask (batch, 1, 1, keys)


@torch.no_grad()  # as a decorator it covers each resumption only, not the caller's code in between
def decode_batch(
    model,
    prompts: list[list[int]],
    max_new_tokens: int,
    pick: Callable[[torch.Tensor, list[int]], list[int]],
    *,
    decoder=None,
    stop_ids: set[int] | frozenset = frozenset(),
    on_forward: Callable[[int, int], None] | None = None,
    feed_last: bool = False,
) -> Iterator[list[tuple[int, torch.Tensor] | None]]:
    """Decode several rows at once; each step yields, per row, (token id, its logits) or None once it stopped.

    `pick(logits, rows)` maps the last logits (batch, vocab) to one token id for each row in `rows`
    (those still going, in order); rows stop at a token in `stop_ids`
    or after `max_new_tokens`. Rows of different lengths are left-padded (see `Rows`), so each
    row's logits equal decoding it alone up to float rounding. `decoder` is what `choose_decoder`
    returned (chosen here when None); every prompt must already fit the context. Once the longest
    row outgrows the context, the window slides: every row's last n_ctx tokens are recomputed from
    scratch each step, as nanoGPT's crop does, because learned positions shift with the window.
    `on_forward(start, fresh)` is called before each forward with the first (padded) position it
    computes and how many of its last positions are new; with `feed_last` the last token is fed
    through the model too (its logits unused), so recording hooks see its states.
    """
    n_ctx = model.cfg.n_ctx
    device = model.cfg.device or "cpu"
    rows = Rows([list(p) for p in prompts], bos_id(model), device)
    assert all(0 < len(r) <= n_ctx for r in rows.rows), "prompts must be encoded and cropped first"
    step = decoder if decoder is not None else choose_decoder(model)
    live = [True] * len(rows.rows)

    def run(fresh: bool, first: bool = False) -> torch.Tensor:
        if fresh:
            ids, positions, mask = rows.window(n_ctx)
        else:
            ids, positions, mask = rows.step([r[-1] for r in rows.rows])
        start = 0 if fresh else rows.width - 1
        if on_forward is not None:
            on_forward(start, ids.shape[1] if first else 1)
        return step(ids, start, positions, mask)[:, -1]  # (batch, vocab)

    with step:
        step.reset()  # a decoder may serve several runs in turn; each starts from an empty cache
        logits = run(fresh=True, first=True)
        for i in range(max_new_tokens):
            out: list = [None] * len(rows.rows)
            going = [r for r in range(len(rows.rows)) if live[r]]
            for r, token in zip(going, pick(logits, going)):
                out[r] = (token, logits[r])
                if token in stop_ids:
                    live[r] = False
            for r, row in enumerate(rows.rows):
                row.append(
                    out[r][0] if out[r] is not None else row[-1]
                )  # a stopped row repeats itself, unread
            yield out
            if not any(live) or (i == max_new_tokens - 1 and not feed_last):
                return  # no forward for tokens nobody will draw (`feed_last`: hooks want their states)
            if rows.width + 1 > n_ctx:
                step.reset()
                logits = run(fresh=True)
            else:
                logits = run(fresh=False)


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
    """Yield (token id, logits it was drawn from) for up to `max_new_tokens` tokens of one row.

    `decode_batch` with one row: see it for `decoder`, `stop_ids`, `on_forward` and `feed_last`.
    """
    one = lambda logits, rows: [pick(logits[0])]  # noqa: E731
    for (item,) in decode_batch(
        model,
        [prompt_ids],
        max_new_tokens,
        one,
        decoder=decoder,
        stop_ids=stop_ids,
        on_forward=on_forward,
        feed_last=feed_last,
    ):
        if item is None:
            return
        yield item
