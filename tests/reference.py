"""Independent computations to test against: a hand-written GPT-2 forward over transformers' weights."""

from __future__ import annotations

import math

import torch


def manual_logits(hf, ids: list[int], kept: list[int] | None = None) -> torch.Tensor:
    """Logits (pos, vocab) of GPT-2 computed by hand, applying only the `kept` blocks in order.

    This is the seed experiment's method: embeddings, the kept blocks, final norm, unembedding,
    with no cache and no hooks.
    """
    t = hf.transformer
    cfg = hf.config
    dev = t.wte.weight.device
    x = torch.tensor(ids, device=dev)
    T = len(ids)
    h = t.wte.weight[x] + t.wpe.weight[:T]  # (pos, d_model)
    H, D = cfg.n_head, cfg.n_embd // cfg.n_head
    mask = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
    layers = range(cfg.n_layer) if kept is None else kept
    for i in layers:
        b = t.h[i]
        a = torch.nn.functional.layer_norm(
            h, (cfg.n_embd,), b.ln_1.weight, b.ln_1.bias, cfg.layer_norm_epsilon
        )
        qkv = a @ b.attn.c_attn.weight + b.attn.c_attn.bias  # Conv1D: (in, out) weights
        q, k, v = qkv.split(cfg.n_embd, dim=-1)
        q, k, v = (z.view(T, H, D).transpose(0, 1) for z in (q, k, v))  # (head, pos, d_head)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        z = (att @ v).transpose(0, 1).reshape(T, cfg.n_embd)
        h = h + z @ b.attn.c_proj.weight + b.attn.c_proj.bias
        m = torch.nn.functional.layer_norm(
            h, (cfg.n_embd,), b.ln_2.weight, b.ln_2.bias, cfg.layer_norm_epsilon
        )
        m = m @ b.mlp.c_fc.weight + b.mlp.c_fc.bias
        m = 0.5 * m * (1 + torch.tanh(math.sqrt(2 / math.pi) * (m + 0.044715 * m**3)))  # gelu_new
        h = h + m @ b.mlp.c_proj.weight + b.mlp.c_proj.bias
    h = torch.nn.functional.layer_norm(h, (cfg.n_embd,), t.ln_f.weight, t.ln_f.bias, cfg.layer_norm_epsilon)
    return h @ hf.lm_head.weight.T


def manual_greedy(hf, ids: list[int], n: int, kept: list[int] | None = None) -> list[int]:
    """Greedy continuation recomputed from scratch each step, cropping to the context (nanoGPT)."""
    seq = list(ids)
    out = []
    n_ctx = hf.config.n_positions
    with torch.no_grad():
        for _ in range(n):
            nxt = int(manual_logits(hf, seq[-n_ctx:], kept)[-1].argmax())
            out.append(nxt)
            seq.append(nxt)
    return out


def hf_greedy_no_cache(hf, ids: list[int], n: int) -> list[int]:
    """Greedy continuation with transformers' own forward, whole sequence each step, no cache."""
    seq = list(ids)
    out = []
    n_ctx = hf.config.n_positions
    with torch.no_grad():
        for _ in range(n):
            window = torch.tensor([seq[-n_ctx:]], device=hf.device)
            nxt = int(hf(window, use_cache=False).logits[0, -1].argmax())
            out.append(nxt)
            seq.append(nxt)
    return out


def chi2_quantile(df: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z=3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
