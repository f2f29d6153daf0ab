"""The hooked runner: the bridge itself computes, so every hook and probe sees the run; any architecture."""

from __future__ import annotations

from functools import partial

import torch

from probes.core.hooks import row_hooks
from probes.core.kvcache import SkipTolerantCache, install_cache_adapter, remove_cache_adapter
from probes.core.runner.base import Runner
from probes.core.runner.products import linear_out_in


def forward_step(model, ids: torch.Tensor, cache, start: int, positions=None, mask=None) -> torch.Tensor:
    """Logits (batch, pos, vocab) for `ids` (batch, pos) through the bridge, extending `cache` (or None)."""
    if positions is None:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)[None]  # (1, pos)
    # Explicit positions: transformers would read them off cache layer 0, which is empty when
    # block 0 is skipped.
    out = model.original_model(
        input_ids=ids, cache=cache, use_cache=cache is not None, position_ids=positions, attention_mask=mask
    )
    return out.logits


class _Rows:
    """Hooks that keep the L+1 residual rows of each forward; a skipped block's row is its neighbour's."""

    def __init__(self, n_layers: int, wanted: list[int] | None = None):
        self.n = n_layers
        self.wanted = list(range(n_layers + 1)) if wanted is None else wanted
        self.seen: dict[int, torch.Tensor] = {}

    def hooks(self) -> list:
        names = row_hooks(self.n)
        return [(names[i], partial(self._keep, i=i)) for i in self.wanted]

    def _keep(self, t, hook, i):
        # A copy: an architecture may update its stream in place after the hook point.
        self.seen[i] = t.detach().clone()

    def take(self) -> list[torch.Tensor]:
        """The rows of the last forward, in order, and forget them."""
        seen, self.seen = self.seen, {}
        assert seen, "no residual hook fired"
        # `probes.skip` fires both hooks of a skipped block; a block skipped some other way fires
        # none, and its input is the stream the next block sees (or the last one's output).
        for i in range(self.n, -1, -1):
            if i not in seen and i + 1 in seen:
                seen[i] = seen[i + 1]
        for i in range(self.n + 1):
            if i not in seen and i - 1 in seen:
                seen[i] = seen[i - 1]
        return [seen[i] for i in self.wanted]


class HookedDecoder:
    """KV-cached steps through the bridge; rows of each skip set run as one batch under `probes.skip`."""

    def __init__(self, model, row_skips=None, record=None):
        self.model = model
        self.record = record
        n = len(row_skips) if row_skips is not None else None
        groups: dict[tuple, list[int]] = {}
        for r, layers in enumerate(row_skips or [[]]):
            groups.setdefault(tuple(sorted(set(layers))), []).append(r)
        self.groups = list(groups.items())  # (skip set, rows)
        self.whole = n is None or len(self.groups) == 1
        self.rows = _Rows(model.cfg.n_layers) if record is not None else None
        self.adapters: list = []
        self._attached = None
        self.reset()

    def reset(self) -> None:
        self.caches = [SkipTolerantCache() for _ in self.groups]

    def __enter__(self):
        from probes.core.hooks import attached

        self.adapters = install_cache_adapter(self.model)  # empty for models from probes.load
        if self.rows is not None:
            self._attached = attached(self.model, self.rows.hooks())
            self._attached.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            if self._attached is not None:
                self._attached.__exit__(*exc)
                self._attached = None
        finally:
            remove_cache_adapter(self.adapters)
            self.adapters = []
        return False

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, start: int, positions=None, mask=None) -> torch.Tensor:
        from probes.core.skip import skip

        if self.whole:
            with skip(self.model, self.groups[0][0]):
                logits = forward_step(self.model, ids, self.caches[0], start, positions, mask)[:, -1:]
            if self.record is not None:
                self.record(self.rows.take())
            return logits
        logits, streams = None, None
        for (layers, rows), cache in zip(self.groups, self.caches):
            index = torch.tensor(rows, device=ids.device)
            part = partial(_select, index=index)
            with skip(self.model, layers):
                out = forward_step(self.model, ids[index], cache, start, part(positions), part(mask))[:, -1:]
            if logits is None:
                logits = out.new_empty(ids.shape[0], *out.shape[1:])
            logits[index] = out
            if self.record is not None:
                got = self.rows.take()
                if streams is None:
                    streams = [g.new_empty(ids.shape[0], *g.shape[1:]) for g in got]
                for s, g in zip(streams, got):
                    s[index] = g
        if self.record is not None:
            self.record(streams)
        return logits


def _select(t: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t.index_select(0, index.to(t.device))


class HookedRunner(Runner):
    """The bridge computes every step, with its hooks: probes attached see the run."""

    kind = "hooked"

    def decoder(self, row_skips=None, record=None) -> HookedDecoder:
        return HookedDecoder(self.model, row_skips, record)

    def _forward_rows(self, ids: torch.Tensor, wanted: list[int] | None = None) -> list[torch.Tensor]:
        from probes.core.hooks import attached

        rows = _Rows(self.n_layers, wanted)
        B, T = ids.shape
        positions = torch.arange(T, device=ids.device)[None].expand(B, T)  # right padding: rows count from 0
        body = self.model.original_model.base_model  # the transformer body: the rows are read out here
        with torch.no_grad(), attached(self.model, rows.hooks()):
            body(input_ids=ids, position_ids=positions)
        return rows.take()

    def streams(self, ids: torch.Tensor) -> list[torch.Tensor]:
        return self._forward_rows(ids)

    def final(self, ids: torch.Tensor) -> torch.Tensor:
        return self._forward_rows(ids, [self.n_layers])[0]

    def resume(self, ids: torch.Tensor, streams: list[torch.Tensor], skips) -> torch.Tensor:
        from probes.core.skip import skip

        if not set(skips) - set(self.skipped):
            return streams[-1]
        with skip(self.model, skips):
            return self.final(ids)

    def readout(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        # The plain torch modules inside the bridge are called, so no hook fires: in compatibility
        # mode they hold the folded weights (the norm's affine folded into a centred W_U), and the
        # model's forward reaches its logits through exactly these two calls.
        ln = self.model.ln_final.original_component
        unembed = self.model.unembed.original_component
        h = ln(x)  # (..., d_model)
        cap = getattr(self.model.cfg, "output_logits_soft_cap", 0) or 0  # Gemma 2: cap * tanh(logits / cap)
        if out is None or x.dim() != 2 or getattr(unembed, "_hf_hook", None) is not None:
            logits = unembed(h)
            if cap > 0:
                logits = torch.tanh(logits / cap) * cap
            return logits if out is None else out.copy_(logits)
        linear_out_in(h, unembed.weight, unembed.bias, out=out)  # weight (vocab, d_model)
        if cap > 0:
            out.div_(cap).tanh_().mul_(cap)
        return out

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward_step(self.model, ids, None, 0)
