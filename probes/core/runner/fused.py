"""The fused runner: GPT-2's forward on fused copies of the bridge's processed weights, without hooks.

The bridge runs every HookPoint and an eager attention written for hooks, which costs about a fifth
of decoding speed. When nothing is attached (no capture, lens or user hook; a `skip` probe is
fine, it is applied here by leaving blocks out) the same computation runs on fused weights with
`scaled_dot_product_attention`. The weights are TransformerLens' processed ones (LayerNorm folded,
writing weights centred), so logits and residual streams match the bridge's to float precision;
tests check it. The fused copy costs one more copy of the block weights in memory.

What it honours: skipped blocks; any hook on any module (then `runner_for` picks the hooked
runner); global module hooks (likewise); weight changes that PyTorch records: in-place ops on a
parameter (`p.mul_(0)`, `p.copy_(x)`), a new tensor, a move or a cast rebuild the fused copy.
Edits through `p.data` bypass PyTorch's version counter and are NOT seen: after them call
`probes.use_fast_path(model, False)` (or set `PROBES_FAST_PATH=0`), and everything runs through the
hooked bridge, which reads the weights live.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from probes.core.runner.base import Runner
from probes.core.runner.products import Weight, linear
from probes.core.state import state_of


def supported(model) -> bool:
    """Only the plain GPT-2 computation is mirrored; anything else takes the hooked runner."""
    cfg = model.cfg
    hf = getattr(model.original_model, "config", None)
    return (
        getattr(hf, "model_type", None) == "gpt2"
        and cfg.positional_embedding_type == "standard"
        and cfg.act_fn == "gelu_new"
        and getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads)
        and getattr(cfg, "device", None) is not None
        and not getattr(model.original_model, "hf_device_map", None)
        # Attention variants the bridge honours and this forward does not (stanford-crfm GPT-2s).
        and not getattr(hf, "scale_attn_by_inverse_layer_idx", False)
        and not getattr(hf, "reorder_and_upcast_attn", False)
        and layernorms_folded(model)
    )


def layernorms_folded(model) -> bool:
    """Compatibility mode folds LayerNorm weights into the next matrices; check, since we rely on it."""
    for block in model.blocks:
        for ln in (block.ln1, block.ln2):
            comp = ln.original_component
            if comp.weight is not None and not bool((comp.weight == 1).all()):
                return False
            if getattr(comp, "bias", None) is not None and not bool((comp.bias == 0).all()):
                return False
    final = model.ln_final.original_component
    return bool((final.weight == 1).all()) and (final.bias is None or bool((final.bias == 0).all()))


class FusedWeights:
    """Fused per-layer weights in (in, out) layout, each a `products.Weight` (which makes (out, in) copies).

    (in, out), as transformers' GPT-2 stores them, is what plain `torch.addmm` takes; on a CPU the
    routed products (one row, a few rows, the unembedding) run on an (out, in) copy made on first use
    (see `probes.core.runner.products`): one more copy of the weights, kept with these.
    """

    def __init__(self, model):
        cfg = model.cfg
        H, D, d, L = cfg.n_heads, cfg.d_head, cfg.d_model, cfg.n_layers
        with torch.no_grad():
            wq, wk, wv = (
                w.permute(0, 2, 1, 3).reshape(L, d, H * D) for w in (model.W_Q, model.W_K, model.W_V)
            )
            self.qkv = Weight(torch.cat([wq, wk, wv], dim=2).contiguous())  # (layer, d_model, 3*H*D)
            self.b_qkv = torch.cat(
                [b.reshape(L, H * D) for b in (model.b_Q, model.b_K, model.b_V)], 1
            ).contiguous()
            self.o = Weight(model.W_O.reshape(L, H * D, d).contiguous())  # (layer, H*D, d_model)
            self.b_o = model.b_O.clone()
            self.mlp_in = Weight(model.W_in.contiguous().clone())  # (layer, d_model, d_mlp)
            self.b_in = model.b_in.clone()
            self.mlp_out = Weight(model.W_out.contiguous().clone())  # (layer, d_mlp, d_model)
            self.b_out = model.b_out.clone()
            self.w_e = model.W_E.clone()  # (vocab, d_model)
            self.w_pos = model.W_pos.clone()  # (n_ctx, d_model)
            self.u = Weight(model.W_U.contiguous().clone(), wide=True)  # (d_model, vocab)
            self.b_u = model.b_U.clone()
        self.H, self.D, self.d, self.eps = H, D, d, cfg.eps
        scale = cfg.attn_scale if cfg.attn_scale and cfg.attn_scale > 0 else math.sqrt(D)
        self.scale = 1.0 / scale
        self.device = self.w_e.device


def _signature(model) -> tuple:
    """Changes when any parameter is edited in place, moved or cast: then the fused copy is stale."""
    return tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in model.parameters())


def weights_for(model) -> FusedWeights:
    """The fused weights, rebuilt whenever the model's parameters changed since they were made."""
    st = state_of(model)
    sig = _signature(model)
    if st.fused is None or st.fused[0] != sig:
        st.fused = (sig, FusedWeights(model))
    return st.fused[1]


def block(
    w: FusedWeights, layer: int, x: torch.Tensor, B: int, T: int, cache=None, mask=None
) -> torch.Tensor:
    """The residual stream (batch*pos, d_model) after block `layer`, the hooked model's math on fused weights.

    `cache` (a `Cache`) extends this layer's keys and values and attends over all of them;
    `mask` (batch, 1, pos, keys), True where a query may attend, replaces the causal mask.
    """
    h = F.layer_norm(x, (w.d,), eps=w.eps)  # LayerNorm weights are folded into the next matrices
    qkv = linear(h, w.qkv, w.b_qkv[layer], layer)  # (batch*pos, 3*H*D)
    q, k, v = qkv.reshape(B, T, 3, w.H, w.D).permute(2, 0, 3, 1, 4)  # each (batch, head, pos, d_head)
    if cache is not None:
        k, v = cache[layer].extend(k, v)
    if mask is None:  # unpadded: a fresh window (causal) or one new token attending to all
        z = F.scaled_dot_product_attention(
            q, k, v, is_causal=T > 1, scale=w.scale
        )  # (batch, head, pos, d_head)
    else:
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=w.scale)
    z = z.transpose(1, 2).reshape(B * T, w.H * w.D)
    x = x + linear(z, w.o, w.b_o[layer], layer)
    h = F.layer_norm(x, (w.d,), eps=w.eps)
    h = F.gelu(linear(h, w.mlp_in, w.b_in[layer], layer), approximate="tanh")  # gelu_new
    return x + linear(h, w.mlp_out, w.b_out[layer], layer)


def unembed(w: FusedWeights, x: torch.Tensor) -> torch.Tensor:
    """Logits (..., vocab) of the residual stream x (..., d_model): final LayerNorm, then W_U."""
    shape = x.shape[:-1]
    x = F.layer_norm(x.reshape(-1, w.d), (w.d,), eps=w.eps)
    return linear(x, w.u, w.b_u).reshape(*shape, w.b_u.shape[0])


class Cache(dict):
    """A decoder's keys and values: layer -> KeysValues, made on first use, none over `limit` positions."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __missing__(self, layer: int) -> KeysValues:
        self[layer] = KeysValues(self.limit)
        return self[layer]


class KeysValues:
    """One layer's cached keys and values, (batch, head, pos, d_head) each, in buffers that double when full.

    Appending by `torch.cat` copies the whole cache at every step: for 16 rows of GPT-2 small at 100
    tokens that is 118 MB a step. Here a step writes only its own positions (amortised); the
    buffers never grow past `limit` positions (the context: decoding starts afresh beyond it).
    """

    def __init__(self, limit: int):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.n, self.limit = 0, limit

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append positions k, v (batch, head, new, d_head); return views of every cached position."""
        new = k.shape[2]
        if self.k is None or self.n + new > self.k.shape[2]:
            size = (
                k.shape[0],
                k.shape[1],
                max(min(2 * (self.n + new), self.limit), self.n + new),
                k.shape[3],
            )
            grown_k, grown_v = k.new_empty(size), v.new_empty(size)
            if self.n:
                grown_k[:, :, : self.n] = self.k[:, :, : self.n]
                grown_v[:, :, : self.n] = self.v[:, :, : self.n]
            self.k, self.v = grown_k, grown_v
        self.k[:, :, self.n : self.n + new] = k
        self.v[:, :, self.n : self.n + new] = v
        self.n += new
        return self.k[:, :, : self.n], self.v[:, :, : self.n]


class FusedDecoder:
    """KV-cached forward steps over the kept blocks, each row leaving out its own (see `Runner.decoder`)."""

    def __init__(self, model, kept: list[int], row_kept: list[list[int]] | None, record):
        self.w = weights_for(model)
        self.kept = kept
        self.record = record
        self.n_layers = model.cfg.n_layers
        self.n_ctx = model.cfg.n_ctx
        self.cache = Cache(self.n_ctx)
        self.partial: dict[int, torch.Tensor] = {}  # block -> (rows,) True where the row keeps it
        if row_kept is not None:
            # Every block any row keeps runs on the whole batch; a row that skips it keeps its stream.
            self.kept = sorted(set().union(*map(set, row_kept)))
            for layer in self.kept:
                keep = torch.tensor([layer in k for k in row_kept], device=self.w.device)
                if not bool(keep.all()):
                    self.partial[layer] = keep

    def reset(self) -> None:
        self.cache = Cache(self.n_ctx)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, start: int, positions=None, mask=None) -> torch.Tensor:
        w = self.w
        B, T = ids.shape
        pos = (
            w.w_pos[start : start + T] if positions is None else w.w_pos[positions]
        )  # (pos | batch, pos, d_model)
        x = (w.w_e[ids] + pos).view(B * T, w.d)  # (batch*pos, d_model)
        kept, streams = set(self.kept), []
        for layer in range(self.n_layers) if self.record is not None else self.kept:
            if self.record is not None:
                streams.append(x.reshape(B, T, w.d))
            if layer not in kept:
                continue
            out = block(w, layer, x, B, T, self.cache, mask)
            keep = self.partial.get(layer)
            x = out if keep is None else torch.where(keep.repeat_interleave(T)[:, None], out, x)
        x = x.reshape(B, T, w.d)
        if self.record is not None:
            self.record(streams + [x])
        return unembed(w, x[:, -1:])  # decoding needs only the next-token logits


class FusedRunner(Runner):
    """GPT-2 on fused weights: hook-free, the blocks a skip leaves out never computed."""

    kind = "fused"

    def __init__(self, model):
        super().__init__(model)
        self.w = weights_for(model)  # fused here, once per weight version, before any clock starts

    def decoder(self, row_skips=None, record=None) -> FusedDecoder:
        if row_skips is None:
            return FusedDecoder(self.model, self.kept_without(()), None, record)
        return FusedDecoder(self.model, [], [self.kept_without(r) for r in row_skips], record)

    @torch.no_grad()  # not inference mode: a tuned lens trains on these streams
    def streams(self, ids: torch.Tensor) -> list[torch.Tensor]:
        w = self.w
        B, T = ids.shape
        x = (w.w_e[ids] + w.w_pos[:T]).view(B * T, w.d)  # (batch*pos, d_model)
        kept, out = set(self.kept_without(())), []
        for layer in range(self.n_layers):
            out.append(x.reshape(B, T, w.d))
            if layer in kept:
                x = block(w, layer, x, B, T)
        out.append(x.reshape(B, T, w.d))
        return out

    @torch.no_grad()
    def final(self, ids: torch.Tensor) -> torch.Tensor:
        w = self.w
        B, T = ids.shape
        x = (w.w_e[ids] + w.w_pos[:T]).view(B * T, w.d)  # (batch*pos, d_model)
        for layer in self.kept_without(()):
            x = block(w, layer, x, B, T)
        return x.reshape(B, T, w.d)

    @torch.no_grad()
    def resume(self, ids: torch.Tensor, streams: list[torch.Tensor], skips) -> torch.Tensor:
        # A run that skips blocks computes what the full model computes up to its first skipped
        # block, so it starts from the full model's stream there: skipping block 11 of 12 costs no block.
        extra = sorted(set(skips) - set(self.skipped))
        if not extra:
            return streams[-1]
        x = streams[extra[0]]
        B, T = x.shape[:2]
        x = x.reshape(B * T, self.w.d)
        for layer in self.kept_without(extra):
            if layer >= extra[0]:
                x = block(self.w, layer, x, B, T)
        return x.reshape(B, T, self.w.d)

    def readout(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        # Gradients flow through when x wants them (tuned-lens training); products then run plain.
        logits = unembed(self.w, x)
        return logits if out is None else out.copy_(logits)
