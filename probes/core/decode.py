"""Decoding: the one loop that feeds rows their next tokens through a runner's KV-cached decoder.

    tokens = sample_rows(model, prompts, configs, indices)       # every row at once, each its own draw

`decode_rows` is the loop itself (nanoGPT's `generate`, for rows of different lengths, skip sets
and recording); `sample_rows` draws each row's tokens with its own generator on top of it. Every
decoding in probes (`generate`, `generate_runs`, the generation lens, capture with `generate=`)
goes through these two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from probes.core.draw import pick_tokens
from probes.core.prompt import bos_id
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError


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
def decode_rows(
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
    """Decode rows together; each step yields, per row, (token id, its logits) or None once it stopped.

    `pick(logits, rows)` maps the last logits (batch, vocab) to one token id for each row in `rows`
    (those still going, in order); rows stop at a token in `stop_ids` or after `max_new_tokens`.
    Rows of different lengths are left-padded (see `Rows`), so each row's logits equal decoding it
    alone up to float rounding. `decoder` is a runner's decoder (`runner_for(model).decoder()` when
    None); every prompt must already fit the context. Once the longest row outgrows the context,
    the window slides: every row's last n_ctx tokens are recomputed from scratch each step, as
    nanoGPT's crop does, because learned positions shift with the window. `on_forward(start,
    fresh)` is called before each forward with the first (padded) position it computes and how many
    of its last positions are new; with `feed_last` the last token is fed through the model too
    (its logits unused), so recording hooks see its states. With `max_new_tokens` 0 the prompt's
    forward runs (for what it records) and nothing is yielded.
    """
    from probes.core.runner import runner_for

    n_ctx = model.cfg.n_ctx
    device = model.cfg.device or "cpu"
    rows = Rows([list(p) for p in prompts], bos_id(model), device)
    assert all(0 < len(r) <= n_ctx for r in rows.rows), "prompts must be encoded and cropped first"
    step = decoder if decoder is not None else runner_for(model).decoder()
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


def sample_rows(
    model,
    prompts: list[list[int]],
    configs: list[SamplingConfig],
    indices: list[int],
    *,
    decoder=None,
    on_token: Callable[[int, int], None] | None = None,
    on_forward: Callable[[int, int], None] | None = None,
    feed_last: bool = False,
) -> list[list[int]]:
    """The tokens of sample `indices[r]` of `configs[r]` continuing `prompts[r]` (encoded), all rows at once.

    Row r draws from its own generator, seeded from (seed, indices[r]), so it gets the tokens it
    gets alone, in any batch (up to float rounding in padded rows): one config gives the same
    tokens in `generate`, `capture(generate=N)` and the generation lens. Rows may differ in
    temperature, top-k, top-p and seed; they share `max_new_tokens` and `stop_at_eos`.
    `on_token(row, id)` is called as each token is produced; `decoder`, `on_forward` and
    `feed_last` go to `decode_rows`.
    """
    first = configs[0]
    if any((c.max_new_tokens, c.stop_at_eos) != (first.max_new_tokens, first.stop_at_eos) for c in configs):
        raise ProbesError("settings decoded together must share max_new_tokens and stop_at_eos")
    gens = [c.generator(k) for c, k in zip(configs, indices)]
    groups: dict[SamplingConfig, list[int]] = {}
    for r, c in enumerate(configs):
        groups.setdefault(c, []).append(r)
    eos = model.tokenizer.eos_token_id
    stop = frozenset({eos}) if first.stop_at_eos and eos is not None else frozenset()

    def pick(logits, rows):  # logits (batch, vocab): one distribution per setting's rows, drawn per row
        going = set(rows)
        token = {}
        for cfg, members in groups.items():
            members = [r for r in members if r in going]
            if members:
                token.update(zip(members, pick_tokens(logits[members], cfg, [gens[r] for r in members])))
        return [token[r] for r in rows]

    out: list[list[int]] = [[] for _ in prompts]
    steps = decode_rows(
        model,
        prompts,
        first.max_new_tokens,
        pick,
        decoder=decoder,
        stop_ids=stop,
        on_forward=on_forward,
        feed_last=feed_last,
    )
    for step in steps:
        for r, item in enumerate(step):
            if item is not None:
                out[r].append(item[0])
                if on_token is not None:
                    on_token(r, item[0])
    return out
