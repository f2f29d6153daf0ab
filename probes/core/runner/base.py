"""The runner interface: what a study may ask of a model's computation, whichever runner does it."""

from __future__ import annotations

import torch

from probes.core.layers import complement
from probes.core.skip import skipped_blocks


class Runner:
    """How a model computes now: decoding steps, full forwards that keep the residual stream, the readout.

    `probes.core.runner.runner_for(model)` picks one per call, since what is attached can change
    between calls: the fused runner (GPT-2 on fused weights, nothing beyond skips attached) or the
    hooked runner (the bridge itself, so every probe sees the computation; any architecture).
    Both honour the blocks `probes.skip` leaves out (`skipped`) and give the same numbers to float
    precision; studies never ask which one they hold.

    The residual stream has L+1 rows: streams[i] (batch, pos, d_model) enters block i
    (`blocks.{i}.hook_resid_pre`; row 0 is the embedding), streams[L] leaves the last block
    (`blocks.{L-1}.hook_resid_post`). A skipped block passes its row through, so its row equals the next.
    Batches are right-padded: causal attention makes the padding exact, and every row counts
    positions from 0.
    """

    kind = "?"

    def __init__(self, model):
        self.model = model
        self.n_layers = model.cfg.n_layers
        self.skipped = skipped_blocks(model)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_layers} blocks, skipped {self.skipped or 'none'})"

    @property
    def home(self):
        """The device the readout runs on (the unembedding's: blocks may sit on other devices), or None when
        the weights are offloaded (accelerate's hooks move inputs in)."""
        device = self.model.unembed.original_component.weight.device
        return None if device.type == "meta" else device

    def kept_without(self, extra) -> list[int]:
        """The blocks that run when `extra` blocks are skipped besides the model's own skips."""
        return complement(sorted(set(self.skipped) | set(extra)), self.n_layers)

    def decoder(self, row_skips: list[list[int]] | None = None, record=None):
        """A KV-cached decoder: `decoder(ids, start, positions=None, mask=None)` -> logits (batch, 1, vocab).

        It is a context manager (`with decoder:` around its calls) with `reset()` for a fresh cache.
        Positions are start.. for every row, or `positions` (batch, pos) for left-padded rows;
        `mask` (batch, 1, pos, cached + pos), True where a query may attend, replaces the causal mask.
        `row_skips`, one list of blocks per row, leaves those blocks out of that row as well.
        `record(streams)` sees each forward's L+1 residual rows, each (batch, pos, d_model).
        """
        raise NotImplementedError

    def streams(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """The L+1 residual rows of a right-padded batch `ids` (batch, pos), each (batch, pos, d_model)."""
        raise NotImplementedError

    def final(self, ids: torch.Tensor) -> torch.Tensor:
        """The last residual row (batch, pos, d_model) of `ids` (batch, pos): `streams(ids)[-1]` alone."""
        return self.streams(ids)[-1]

    def resume(self, ids: torch.Tensor, streams: list[torch.Tensor], skips) -> torch.Tensor:
        """The last residual row of `ids` with blocks `skips` left out too, given the model's `streams`."""
        raise NotImplementedError

    def readout(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (..., vocab) of residual rows x (..., d_model): the final norm, then the unembedding.

        The norm's statistics come from x itself, as the model's own last step computes them; `out`
        (rows, vocab), for 2-D x, receives the logits. Gradients flow when x wants them.
        """
        raise NotImplementedError

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """The model's logits (batch, pos, vocab) for a right-padded batch `ids` (batch, pos)."""
        return self.readout(self.final(ids))

    def logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """float32 log-probabilities (..., vocab) of residual rows x (..., d_model)."""
        return torch.log_softmax(self.readout(x).float(), -1)
