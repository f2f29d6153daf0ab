"""The runner seam: which runner computes, the fused runner against the hooked bridge, and the CPU products.

Every test of the fused (fast) path is here. The rest of the suite runs through whatever runner
`runner_for` picks, and CI runs it twice: as it is, and with PROBES_FAST_PATH=0 (hooked only).
"""

from __future__ import annotations

import time
import warnings

import pytest
import torch

import probes
from probes.core.runner import products, runner_for
from probes.core.runner.fused import FusedRunner
from probes.core.runner.hooked import HookedRunner


@pytest.fixture(autouse=True)
def fast_path_allowed(monkeypatch):
    """These tests pick each runner themselves, whatever PROBES_FAST_PATH says for the rest of the suite."""
    monkeypatch.delenv("PROBES_FAST_PATH", raising=False)
    monkeypatch.delenv("PROBES_CPU_ROUTES", raising=False)


IDS = [[0, 5, 67, 300, 12, 99, 7, 41], [0, 9, 9, 150, 2, 18, 60, 3]]


def both(model):
    return FusedRunner(model), HookedRunner(model)


def test_the_runner_is_fused_unless_something_is_attached_or_it_is_switched_off(tiny, monkeypatch):
    assert isinstance(runner_for(tiny), FusedRunner)
    with probes.skip(tiny, "odd"):  # our own skips are no probe
        assert isinstance(runner_for(tiny), FusedRunner)
    with probes.attached(tiny, [("blocks.0.hook_resid_pre", lambda t, hook: None)]):
        assert isinstance(runner_for(tiny), HookedRunner)  # a probe is attached: it must see the run
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert isinstance(runner_for(tiny), HookedRunner)  # a global module hook too
    finally:
        handle.remove()
    probes.use_fast_path(tiny, False)
    try:
        assert isinstance(runner_for(tiny), HookedRunner)
    finally:
        probes.use_fast_path(tiny, True)
    monkeypatch.setenv("PROBES_FAST_PATH", "0")
    assert isinstance(runner_for(tiny), HookedRunner)


@pytest.mark.parametrize("spec", ["none", "odd", "0", "last-half"])
def test_fused_and_hooked_runners_agree_on_streams_resume_and_readout(tiny, spec):
    ids = torch.tensor(IDS, device=tiny.cfg.device)
    with probes.skip(tiny, spec):
        fused, hooked = both(tiny)
        a, b = fused.streams(ids), hooked.streams(ids)
        assert len(a) == len(b) == tiny.cfg.n_layers + 1
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=1e-4, rtol=0)
        torch.testing.assert_close(fused.final(ids), hooked.final(ids), atol=1e-4, rtol=0)
        # The readout of the last row is the model's own logits.
        with torch.no_grad():
            logits = tiny(ids)
        torch.testing.assert_close(fused.readout(a[-1]), logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(hooked.readout(b[-1]), logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(fused.logits(ids), logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(hooked.logits(ids), logits, atol=1e-4, rtol=0)
        # Resuming with block 2 skipped as well equals running the model that skips it.
        with probes.skip(tiny, [2]):
            with torch.no_grad():
                skipped = tiny(ids)
        for runner, rows in ((fused, a), (hooked, b)):
            torch.testing.assert_close(
                runner.readout(runner.resume(ids, rows, [2])), skipped, atol=1e-4, rtol=0
            )


def test_the_readout_recomputes_the_norm_from_each_row(tiny):
    # The final norm's statistics come from the row itself: scaling a row changes its reading only
    # by LayerNorm's eps, which a cached scale from the last layer would not.
    ids = torch.tensor(IDS[:1], device=tiny.cfg.device)
    for runner in both(tiny):
        x = runner.final(ids)
        torch.testing.assert_close(runner.readout(3 * x), runner.readout(x), atol=1e-3, rtol=0)
        out = torch.empty(x.shape[1], tiny.cfg.d_vocab)
        got = runner.readout(x[0], out=out)
        assert got.data_ptr() == out.data_ptr()
        torch.testing.assert_close(out, runner.readout(x[0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("row_skips", [None, [[], [1, 3]]])
def test_fused_and_hooked_decoders_agree_step_by_step_and_record_the_same_rows(tiny, row_skips):
    ids = torch.tensor(IDS, device=tiny.cfg.device)
    got = {}
    for runner in both(tiny):
        seen = []
        step = runner.decoder(row_skips=row_skips, record=lambda rows, seen=seen: seen.append(rows))
        with step:
            first = step(ids, 0).log_softmax(-1)[:, -1]
            nxt = step(torch.tensor([[7], [8]], device=tiny.cfg.device), ids.shape[1]).log_softmax(-1)[:, -1]
        got[runner.kind] = first, nxt, seen
    for a, b in zip(got["fused"][:2], got["hooked"][:2]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    for rows_a, rows_b in zip(got["fused"][2], got["hooked"][2]):
        for x, y in zip(rows_a, rows_b):
            torch.testing.assert_close(x, y, atol=1e-4, rtol=0)
    if row_skips is not None:  # row 1 skips blocks 1 and 3: its logits are those of that model alone
        with probes.skip(tiny, [1, 3]), torch.no_grad():
            alone = tiny(ids[1:]).log_softmax(-1)[:, -1]
        torch.testing.assert_close(got["fused"][0][1:], alone, atol=1e-4, rtol=0)


def test_generation_is_the_same_through_either_runner(tiny):
    a = probes.generate(tiny, "Hi there", max_new_tokens=20, temperature=1.0, seed=5)
    with probes.attached(tiny, [("hook_embed", lambda t, hook: None)]):
        b = probes.generate(tiny, "Hi there", max_new_tokens=20, temperature=1.0, seed=5)
    assert a[0].tokens == b[0].tokens


def test_the_fused_runner_follows_weight_edits(tiny_dir):
    """An in-place weight edit (an ablation) must reach generation, not a stale fused copy."""
    m = probes.load(str(tiny_dir))
    before = probes.generate(m, "Hi there", max_new_tokens=10, greedy=True, num_samples=3)
    with torch.no_grad():
        for p in m.blocks[0].mlp.parameters():
            p.mul_(0.0)
    fast = probes.generate(m, "Hi there", max_new_tokens=10, greedy=True, num_samples=3)
    with probes.attached(m, [("hook_embed", lambda t, hook: None)]):
        hooked = probes.generate(m, "Hi there", max_new_tokens=10, greedy=True, num_samples=3)
    assert [s.tokens for s in fast] == [s.tokens for s in hooked] != [s.tokens for s in before]


def test_data_edits_need_the_fast_path_switched_off(tiny_dir):
    m = probes.load(str(tiny_dir))
    before = probes.generate(m, "Hi there", max_new_tokens=8, greedy=True)[0].tokens
    with torch.no_grad():
        for block in m.blocks:  # the hooked runner reads these live; the fused copy cannot see .data edits
            block.mlp.original_component.c_fc.weight.data.zero_()
            block.attn.original_component.c_proj.weight.data.zero_()
    probes.use_fast_path(m, False)
    hooked = probes.generate(m, "Hi there", max_new_tokens=8, greedy=True)[0].tokens
    with probes.attached(m, [("hook_embed", lambda t, hook: None)]):  # any hook: the hooked runner too
        assert probes.generate(m, "Hi there", max_new_tokens=8, greedy=True)[0].tokens == hooked
    assert hooked != before
    probes.use_fast_path(m, True)


def test_timing_leaves_out_the_one_off_weight_fusing(tiny, monkeypatch):
    # The first run on a model fuses its weights; counting that made `prune` show the full model
    # (always run first) slower than it is, and skipping correspondingly faster.
    from probes.core.runner import fused
    from probes.core.state import state_of

    real, built = fused.FusedWeights, []

    def slow_fusing(model):
        time.sleep(1.0)
        built.append(model)
        return real(model)

    monkeypatch.setattr(fused, "FusedWeights", slow_fusing)
    monkeypatch.setattr(state_of(tiny), "fused", None)
    out = probes.generate(tiny, "Hi", max_new_tokens=2, greedy=True)
    assert built == [tiny]
    assert out.timing["seconds"] < 1.0


ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 31, 32, 33, 255, 256, 257, 600)  # every route and each range's edges


@pytest.mark.parametrize("routes", [True, False])
def test_products_are_x_at_w_plus_b_for_any_number_of_rows(routes, monkeypatch):
    """Each row count takes its route (oneDNN, swapped oneDNN, MKL on the (out, in) copy, or plain addmm)."""
    products.reset()
    if not routes:
        monkeypatch.setenv("PROBES_CPU_ROUTES", "0")
    g = torch.Generator().manual_seed(1)
    blocks = products.Weight(torch.randn(3, 24, 40, generator=g))  # (layer, in, out)
    wide = products.Weight(torch.randn(24, 300, generator=g), wide=True)
    for rows in ROWS:
        for weight, layer in ((blocks, 1), (wide, None)):
            w = weight.in_out if layer is None else weight.in_out[layer]
            bias = torch.randn(w.shape[1], generator=g)
            x = torch.randn(rows, w.shape[0], generator=g)
            expected = (x.double() @ w.double() + bias.double()).float()
            got = products.linear(x, weight, bias, layer)
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
            assert got.shape == expected.shape and (got.is_contiguous() or got.t().is_contiguous())
    assert products._ROUTES is (routes and torch.backends.mkldnn.is_available())
    # A weight stored (out, in), as nn.Linear's: into a buffer, with and without a bias.
    x = torch.randn(5, 24, generator=g)
    for bias in (torch.randn(300, generator=g), None):
        out = torch.empty(5, 300)
        got = products.linear_out_in(x, wide.out_in(), bias, out=out)
        expected = x.double() @ wide.in_out.double() + (0 if bias is None else bias.double())
        assert got.data_ptr() == out.data_ptr()
        torch.testing.assert_close(out, expected.float(), atol=1e-4, rtol=1e-4)
    # With gradients wanted (oneDNN has no backward) the product is plain, and differentiable.
    x = torch.randn(3, 24, requires_grad=True)
    products.linear(x, blocks, torch.zeros(40), 0).sum().backward()
    torch.testing.assert_close(x.grad, blocks.in_out[0].sum(1).expand(3, -1), atol=1e-4, rtol=1e-4)
    products.reset()


def test_a_route_that_fails_falls_back_to_the_plain_product_and_warns_once(monkeypatch):
    products.reset()
    if not products.routes_work():
        pytest.skip("this torch build has no working oneDNN: every product is plain already")

    def broken(*a, **k):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(products, "_ROUTES", True)  # checked and right: the failure comes on a later shape
    monkeypatch.setattr(products, "onednn_swapped", broken)
    weight = products.Weight(torch.randn(24, 40))
    bias = torch.randn(40)
    x = torch.randn(16, 24)  # a swapped-route row count
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = products.linear(x, weight, bias)
        again = products.linear(torch.randn(1, 24), weight, bias)  # every route is off now: plain
    torch.testing.assert_close(got, x @ weight.in_out + bias, atol=1e-4, rtol=1e-4)
    assert again.shape == (1, 40)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "no kernel for this shape" in messages[0] and "torch.addmm" in messages[0]
    products.reset()


def test_a_route_that_computes_wrong_is_never_used(monkeypatch):
    products.reset()
    real = products._onednn
    monkeypatch.setattr(products, "_onednn", lambda x, w, b: real(x, w, b) + 1.0)  # off by one everywhere
    assert products.routes_work() is False
    products.reset()
