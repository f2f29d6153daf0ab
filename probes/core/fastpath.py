"""Fast decoding: a hook-free GPT-2 forward over the bridge's processed weights, used when no probe hooks are
attached.

The bridge runs every HookPoint and an eager attention written for hooks, which costs about a fifth
of decoding speed. When nothing is attached (no capture, lens or user hook; a `skip` probe is
fine, it is applied here by leaving blocks out) the same computation runs on fused weights with
`scaled_dot_product_attention`. The weights are TransformerLens' processed ones (LayerNorm folded,
writing weights centred), so logits match the bridge's to float precision; tests check it. The fused
copy costs one more copy of the block weights in memory.

What the fast path honours: skipped blocks; any hook on any module (then it steps aside); global
module hooks (`torch.nn.modules.module.register_module_forward_hook`, likewise); weight changes
that PyTorch records: in-place ops on a parameter (`p.mul_(0)`, `p.copy_(x)`), a new tensor, a
move or a cast rebuild the fused copy. Edits through `p.data` bypass PyTorch's version counter
and are NOT seen: after them call `probes.use_fast_path(model, False)` (or set
`PROBES_FAST_PATH=0`), and generation runs through the hooked bridge, which reads the weights live.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from probes.core.state import probes_attached, state_of


def eligible(model) -> bool:
    """True when the fast path computes exactly what the hooked model would: no hooks beyond skips.

    Also False when switched off: `probes.use_fast_path(model, False)` or `PROBES_FAST_PATH=0`.
    """
    if os.environ.get("PROBES_FAST_PATH", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return state_of(model).fast_path and _supported(model) and not probes_attached(model)


def _supported(model) -> bool:
    """Only the plain GPT-2 computation is mirrored; anything else takes the hooked path."""
    cfg = model.cfg
    hf = getattr(model.original_model, "config", None)
    return (
        cfg.positional_embedding_type == "standard"
        and cfg.act_fn == "gelu_new"
        and getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads)
        and getattr(cfg, "device", None) is not None
        and not getattr(model.original_model, "hf_device_map", None)
        # Attention variants the bridge honours and this forward does not (stanford-crfm GPT-2s).
        and not getattr(hf, "scale_attn_by_inverse_layer_idx", False)
        and not getattr(hf, "reorder_and_upcast_attn", False)
        and _layernorms_folded(model)
    )


def _layernorms_folded(model) -> bool:
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


class FastWeights:
    """Fused per-layer weights in (in, out) layout for `torch.addmm`, and on a CPU an (out, in) copy for
    batches.

    (in, out) rather than F.linear's (out, in): for one token at a time the matrix-vector products
    run about 15% faster this way on CPUs (it is also how transformers' GPT-2 stores them). For a
    few rows at a time (batched decoding: 2 to 256 rows) MKL is far slower with that layout than
    with W^T @ x^T on an (out, in) copy: on a 2-core AMD EPYC, 16 sampled rows of GPT-2 small
    decode at 130-146 tokens/s against 91-97. So on a CPU the first batched product makes the
    (out, in) copy (`transposed`), one more copy of the weights, kept with these.
    """

    def __init__(self, model):
        cfg = model.cfg
        H, D, d = cfg.n_heads, cfg.d_head, cfg.d_model
        with torch.no_grad():
            wq, wk, wv = (
                w.permute(0, 2, 1, 3).reshape(cfg.n_layers, d, H * D)
                for w in (model.W_Q, model.W_K, model.W_V)
            )
            self.w_qkv = torch.cat([wq, wk, wv], dim=2).contiguous()  # (layer, d_model, 3*H*D)
            self.b_qkv = torch.cat(
                [b.reshape(cfg.n_layers, H * D) for b in (model.b_Q, model.b_K, model.b_V)], 1
            ).contiguous()
            self.w_o = model.W_O.reshape(cfg.n_layers, H * D, d).contiguous()  # (layer, H*D, d_model)
            self.b_o = model.b_O.clone()
            self.w_in = model.W_in.contiguous().clone()  # (layer, d_model, d_mlp)
            self.b_in = model.b_in.clone()
            self.w_out = model.W_out.contiguous().clone()  # (layer, d_mlp, d_model)
            self.b_out = model.b_out.clone()
            self.w_e = model.W_E.clone()  # (vocab, d_model)
            self.w_pos = model.W_pos.clone()  # (n_ctx, d_model)
            self.w_u = model.W_U.contiguous().clone()  # (d_model, vocab)
            self.b_u = model.b_U.clone()
        self.H, self.D, self.d, self.eps = H, D, d, cfg.eps
        scale = cfg.attn_scale if cfg.attn_scale and cfg.attn_scale > 0 else math.sqrt(D)
        self.scale = 1.0 / scale
        self.on_cpu = self.w_u.device.type == "cpu"
        self._transposed: dict[str, torch.Tensor] = {}

    def transposed(self, name: str) -> torch.Tensor:
        """The (out, in) copy of weight `name` ((layer,) out, in), made on first use."""
        if name not in self._transposed:
            with torch.no_grad():
                self._transposed[name] = getattr(self, name).transpose(-1, -2).contiguous()
        return self._transposed[name]


BATCH_ROWS = range(2, 257)  # rows for which a CPU product runs as W^T @ x^T (see FastWeights)
ROW_MULTIPLE = 8  # ... with the rows padded to a multiple of this, from PAD_FROM rows on
PAD_FROM = 7
SWAPPED_ROWS = range(5, 33)  # rows for which oneDNN runs the product with the operands' roles swapped
# How a CPU float32 product runs, from measurements on a 2-core AMD EPYC (Zen 3, AVX2; one decoding
# step of GPT-2 small's products, 2 threads):
# - MKL's AVX2 kernels take the rows (the columns of W^T @ x^T) eight at a time, and some
#   remainders are slow: 60-65 ms for 8 or 16 rows but 80-120 ms for 10 to 15 (131-151 ms for 23
#   or 31 rows, 94 for 32). Zero rows padding to a multiple of 8 fix that (PAD_FROM on).
# - oneDNN (`torch.ops.mkldnn._linear_pointwise`, what torch.compile's CPU backend calls) does
#   better for one row (15 ms against 19, straight from the (in, out) weights, no copy) and for
#   the unembedding of many rows (the held-out sweep's 512: 320-390 ms against 530).
# - For 5 to 32 rows oneDNN does best of all when the roles are swapped: the (out, in) weight is
#   its input, whose many rows it blocks and streams once, and x (padded to a multiple of 8) its
#   small "weight": W @ x^T, transposed back with the bias added. 16 rows: 37.5 ms for the blocks
#   and 12.7 for the unembedding, against 50.9 and 20.5 the usual way round and 46.6 and 27.1 for
#   MKL; 16 sampled rows decode 1.27x faster. Beyond 32 rows MKL wins again (40 rows: 144 ms
#   against 132), and for 2 to 4 it is as fast.
# oneDNN has no autograd: with gradients MKL always runs.


def linear(w: FastWeights, name: str, layer: int | None, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x (rows, in) @ weight `name` (of `layer`) + bias: (rows, out), run as the CPU's libraries run it
    fastest."""
    rows = x.shape[0]
    if w.on_cpu and _onednn_ok(x):
        if rows == 1:
            weight = getattr(w, name)
            return _onednn(x, (weight if layer is None else weight[layer]).t(), bias)
        if rows in SWAPPED_ROWS:
            wt = w.transposed(name)
            return _onednn_swapped(x, wt if layer is None else wt[layer], bias)
        if name == "w_u" and rows >= BATCH_ROWS.stop:
            return _onednn(x, w.transposed(name), bias)
    if w.on_cpu and rows in BATCH_ROWS:
        wt = w.transposed(name)
        wt = wt if layer is None else wt[layer]
        if rows >= PAD_FROM and _padded(rows) != rows:
            x = _pad_rows(x)
            # Copied: elementwise ops (gelu) on the strided slice run 3-8x slower than on dense memory.
            return torch.addmm(bias[:, None], wt, x.t())[:, :rows].t().contiguous()
        return torch.addmm(bias[:, None], wt, x.t()).t()  # a transposed view
    weight = getattr(w, name)
    return torch.addmm(bias, x, weight if layer is None else weight[layer])


def _padded(rows: int) -> int:
    return -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE


def _pad_rows(x: torch.Tensor) -> torch.Tensor:
    """x with zero rows added up to a multiple of ROW_MULTIPLE rows."""
    missing = _padded(x.shape[0]) - x.shape[0]
    return torch.cat([x, x.new_zeros(missing, x.shape[1])]) if missing else x


def linear_out_in(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """x (rows, in) @ weight.T + bias for a weight stored (out, in), as nn.Linear holds it, into `out` if
    given.

    oneDNN on a CPU where it can: its product and then one copy into `out` beat MKL writing in place.
    """
    if weight.device.type == "cpu" and _onednn_ok(x):
        y = _onednn(x, weight, bias)
        return y if out is None else out.copy_(y)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def _onednn(x: torch.Tensor, weight_out_in: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight_out_in, bias, "none", [], "")


def _onednn_swapped(x: torch.Tensor, weight_out_in: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x @ weight_out_in.T + bias, dense (rows, out), computed by oneDNN as weight_out_in @ x.T (see
    SWAPPED_ROWS)."""
    rows = x.shape[0]
    y = torch.ops.mkldnn._linear_pointwise(
        weight_out_in, _pad_rows(x).contiguous(), None, "none", [], ""
    )  # (out, padded rows)
    return torch.add(y[:, :rows].t(), bias, out=y.new_empty(rows, y.shape[0]))


def _onednn_ok(x: torch.Tensor) -> bool:
    """oneDNN for this float32 CPU input: available, checked once, and no gradient wanted."""
    global _ONEDNN
    if x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled()):
        return False
    if _ONEDNN is None:
        _ONEDNN = _onednn_works()
    return _ONEDNN


_ONEDNN: bool | None = None


def _onednn_works() -> bool:
    """Whether this torch build runs oneDNN's linear, and gets x @ W + b right, on both weight layouts and
    swapped."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*shape, generator=g) for shape in ((3, 8), (8, 5), (5,)))
        expected = x.double() @ w.double() + b.double()
        with torch.inference_mode():
            got = [_onednn(x, wt, b) for wt in (w.t(), w.t().contiguous())] + [
                _onednn_swapped(x, w.t().contiguous(), b)
            ]
            return all(torch.allclose(y.double(), expected, atol=1e-4) for y in got)
    except Exception:  # noqa: BLE001 - any failure means: use MKL
        return False


def _signature(model) -> tuple:
    """Changes when any parameter is edited in place, moved or cast: then the fused copy is stale."""
    return tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in model.parameters())


def weights_for(model) -> FastWeights:
    """The fused weights, rebuilt whenever the model's parameters changed since they were made."""
    st = state_of(model)
    sig = _signature(model)
    if st.fused is None or st.fused[0] != sig:
        st.fused = (sig, FastWeights(model))
    return st.fused[1]


class FastDecoder:
    """KV-cached forward steps over `layers` (the kept blocks), mirroring the hooked model's math.

    `row_layers`, one list of kept blocks per row, lets rows of one batch skip different blocks:
    every block any row keeps runs on the whole batch, and a row that skips it keeps its stream.
    `record(streams)`, when given, sees every forward's residual stream, as the hook points
    `blocks.{i}.hook_resid_pre` and the last `hook_resid_post` hold it: streams[i] (batch, pos,
    d_model) before block i (a skipped block's equals the next), streams[n_layers] after the last.
    """

    def __init__(self, model, layers: list[int], row_layers: list[list[int]] | None = None, record=None):
        self.w = weights_for(model)
        self.layers = layers
        self.record = record
        self.n_layers = model.cfg.n_layers
        self.n_ctx = model.cfg.n_ctx
        self.cache = Cache(self.n_ctx)
        self.partial: dict[int, torch.Tensor] = {}  # block -> (rows,) True where the row keeps it
        if row_layers is not None:
            self.layers = sorted(set().union(*map(set, row_layers)))
            device = self.w.w_u.device
            for layer in self.layers:
                keep = torch.tensor([layer in kept for kept in row_layers], device=device)
                if not bool(keep.all()):
                    self.partial[layer] = keep

    def reset(self) -> None:
        self.cache = Cache(self.n_ctx)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @torch.inference_mode()
    def __call__(
        self, ids: torch.Tensor, start: int, positions=None, mask=None, last_only: bool = True
    ) -> torch.Tensor:
        """Logits (batch, pos, vocab) for ids (batch, pos) (only the last position's if `last_only`).

        Positions are start.. for every row, or `positions` (batch, pos) for padded rows; `mask`
        (batch, 1, pos, cached + pos), True where a query may attend, replaces the causal mask.
        """
        w = self.w
        B, T = ids.shape
        pos = (
            w.w_pos[start : start + T] if positions is None else w.w_pos[positions]
        )  # (pos | batch, pos, d_model)
        x = (w.w_e[ids] + pos).view(B * T, w.d)  # (batch*pos, d_model)
        kept, streams = set(self.layers), []
        for layer in range(self.n_layers) if self.record is not None else self.layers:
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
        return unembed(w, x[:, -1:] if last_only else x)  # decoding needs only the next-token logits


def block(
    w: FastWeights, layer: int, x: torch.Tensor, B: int, T: int, cache: dict | None = None, mask=None
) -> torch.Tensor:
    """The residual stream (batch*pos, d_model) after block `layer`, the hooked model's math on fused weights.

    `cache` (a Cache: layer -> KeysValues) extends and keeps the keys and values of decoding; None keeps
    nothing. `mask` (batch, 1, pos, keys), True where a query may attend, replaces the causal mask.
    """
    h = F.layer_norm(x, (w.d,), eps=w.eps)  # LayerNorm weights are folded into the next matrices
    qkv = linear(w, "w_qkv", layer, w.b_qkv[layer], h)  # (batch*pos, 3*H*D)
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
    x = x + linear(w, "w_o", layer, w.b_o[layer], z)
    h = F.layer_norm(x, (w.d,), eps=w.eps)
    h = F.gelu(linear(w, "w_in", layer, w.b_in[layer], h), approximate="tanh")  # gelu_new
    return x + linear(w, "w_out", layer, w.b_out[layer], h)


class Cache(dict):
    """A decoder's keys and values: layer -> KeysValues, made on first use, none longer than `limit`
    positions."""

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


def unembed(w: FastWeights, x: torch.Tensor) -> torch.Tensor:
    """Logits (batch, pos, vocab) of the residual stream x (batch, pos, d_model): final LayerNorm, then
    W_U."""
    B, T = x.shape[:2]
    x = F.layer_norm(x.reshape(B * T, w.d), (w.d,), eps=w.eps)
    return linear(w, "w_u", None, w.b_u, x).reshape(B, T, w.w_u.shape[1])  # (batch, pos, vocab)


class FastScorer:
    """Whole-window forwards over the fused weights, for scoring held-out text under many skip sets.

    No KV cache. A run that skips blocks computes what the full model computes up to its first
    skipped block, so it starts from the full model's residual stream there (`resid`, recorded by
    `stream(..., record=True)`) and runs only the blocks it keeps after it: skipping block 11 of 12
    costs no block at all. Rows are right-padded windows, exact under causal attention.
    """

    def __init__(self, model):
        self.w = weights_for(model)
        self.n = model.cfg.n_layers

    @torch.inference_mode()
    def stream(self, ids: torch.Tensor, kept: list[int], *, record: bool = False):
        """(final residual (batch, pos, d_model), [resid before block i for i in 0..n, the last being the
        final]).

        The list is empty unless `record`; a block not in `kept` passes the stream through, so its
        entry equals the next one's.
        """
        w = self.w
        B, T = ids.shape
        x = (w.w_e[ids] + w.w_pos[:T]).view(B * T, w.d)  # (batch*pos, d_model)
        resid = []
        for layer in range(self.n):
            if record:
                resid.append(x.reshape(B, T, w.d))
            if layer in kept:
                x = block(w, layer, x, B, T)
        if record:
            resid.append(x.reshape(B, T, w.d))
        return x.reshape(B, T, w.d), resid

    @torch.inference_mode()
    def resume(self, resid: list[torch.Tensor], first: int, kept: list[int]) -> torch.Tensor:
        """The final residual (batch, pos, d_model) of a run that agrees with `resid` before block `first`."""
        w = self.w
        x = resid[first]
        B, T = x.shape[:2]
        x = x.reshape(B * T, w.d)
        for layer in kept:
            if layer >= first:
                x = block(w, layer, x, B, T)
        return x.reshape(B, T, w.d)

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return unembed(self.w, x)
