"""Property tests for the sampling options: valid settings give a proper distribution, bad ones raise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.core.draw import entropy_of, mass_count, sampling_probs
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError

logits_st = st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=40).map(torch.tensor)
temps = st.floats(0.05, 50, allow_nan=False)
ks = st.one_of(st.none(), st.integers(1, 60))
ps = st.one_of(st.none(), st.floats(0.01, 1.0, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(logits_st, temps, ks, ps)
def test_valid_settings_give_a_distribution(logits, t, k, p):
    s = SamplingConfig(t, k, p)
    probs = sampling_probs(logits, s)
    assert torch.all(probs >= 0)
    assert abs(float(probs.sum()) - 1) < 1e-5
    support = int((probs > 0).sum())
    # Truncation sees the tempered logits, where two logits an ulp apart may become one value.
    scaled = logits.float() / t
    if k is not None:
        # ties at the k-th logit may keep a few more
        kth = torch.topk(scaled, min(k, len(logits))).values[-1]
        assert support <= int((scaled >= kth).sum())
    # the most likely token (or one tied with it) always survives truncation
    assert probs[scaled == scaled.max()].sum() > 0
    if p is not None and k is None and t == 1:
        full = torch.softmax(logits.double(), -1)
        assert float(full[probs > 0].sum()) >= p - 1e-6


@settings(max_examples=100, deadline=None)
@given(logits_st)
def test_lower_temperature_never_raises_entropy(logits):
    e = [float(entropy_of(sampling_probs(logits, SamplingConfig(t, None, None)))) for t in (0.1, 1.0, 10.0)]
    assert e[0] <= e[1] + 1e-6 <= e[2] + 2e-6


@settings(max_examples=100, deadline=None)
@given(logits_st)
def test_greedy_and_temperature_zero_are_one_hot(logits):
    for s in (SamplingConfig(0, None, None), SamplingConfig(1.0, 5, None, greedy=True)):
        probs = sampling_probs(logits, s)
        assert float(probs.max()) == 1.0 and mass_count(probs) == 1


@given(st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.just(math.inf)))
def test_bad_temperatures_raise(t):
    with pytest.raises(ProbesError, match="temperature"):
        SamplingConfig(t, None, None)


@given(st.one_of(st.integers(max_value=-1), st.just(True)))
def test_bad_top_k_raises(k):
    with pytest.raises(ProbesError, match="top-k"):
        SamplingConfig(1.0, k, None)


def test_top_k_zero_is_the_one_spelling_of_no_top_k():
    assert SamplingConfig(top_k=0) == SamplingConfig(top_k=None) and SamplingConfig(top_k=0).top_k is None


@given(st.integers(-(2**70), 2**70))
def test_seeds_outside_what_torch_accepts_raise(seed):
    if -(2**63) <= seed < 2**64:
        SamplingConfig(seed=seed).generator(0)  # torch accepts it
        SamplingConfig(seed=seed).generator(3)
    else:
        with pytest.raises(ProbesError, match="seed"):
            SamplingConfig(seed=seed)


@given(
    st.one_of(
        st.floats(max_value=0.0), st.floats(min_value=1.0000001, allow_infinity=False), st.just(math.nan)
    )
)
def test_bad_top_p_raises(p):
    with pytest.raises(ProbesError, match="top-p"):
        SamplingConfig(1.0, None, p)


def test_top_p_keeps_the_larger_logit_when_probabilities_round_equal():
    # Found by Hypothesis: after temperature 4 the two probabilities are one float32 value, and
    # sorting them put the smaller logit first, so top-p 0.5 dropped the argmax.
    logits = torch.tensor([-1.192092896e-07, 0.0])
    probs = sampling_probs(logits, SamplingConfig(temperature=4.0, top_p=0.5))
    assert probs.tolist() == [0.0, 1.0]


def test_draw_index_follows_the_distribution_and_never_draws_a_zero():
    from probes.core.draw import draw_index

    probs = torch.zeros(1000)
    probs[[3, 10, 500, 999]] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    gen = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([draw_index(probs, gen) for _ in range(20000)]), minlength=1000)
    assert set(counts.nonzero().squeeze(-1).tolist()) == {3, 10, 500, 999}
    expected = probs * 20000
    chi2 = float((((counts - expected) ** 2)[probs > 0] / expected[probs > 0]).sum())
    assert chi2 < 16.3  # 3 degrees of freedom: p = 0.001
    first = [draw_index(probs, torch.Generator().manual_seed(s)) for s in range(30)]
    assert first == [
        draw_index(probs, torch.Generator().manual_seed(s)) for s in range(30)
    ]  # a seed picks the same


def test_draw_index_barely_moves_when_rounding_moves_the_probabilities():
    # A batched row and the same row alone differ by float rounding; the token drawn must not.
    from probes.core.draw import draw_index

    torch.manual_seed(0)
    changed = 0
    for s in range(300):
        probs = torch.softmax(torch.randn(5000) * 2, -1)
        noisy = probs * (1 + 1e-6 * torch.randn(5000))
        noisy = noisy / noisy.sum()
        changed += draw_index(probs, torch.Generator().manual_seed(s)) != draw_index(
            noisy, torch.Generator().manual_seed(s)
        )
    assert changed <= 1


def test_top_k_picks_equal_drawing_from_the_full_distribution():
    # pick_tokens softmaxes only the k largest logits; the draw must be the one sampling_probs + draw_index
    # give.
    from probes.core.draw import draw_index, pick_tokens

    torch.manual_seed(1)
    logits = torch.randn(6, 3000) * 3
    for cfg in (
        SamplingConfig(temperature=0.8, top_k=20),
        SamplingConfig(temperature=2.0, top_k=1),
        SamplingConfig(temperature=1.0, top_k=None),
        SamplingConfig(temperature=1.0, top_k=50, top_p=0.9),
    ):
        probs = sampling_probs(logits, cfg)
        for seed in range(20):
            gens = [torch.Generator().manual_seed(seed * 10 + r) for r in range(6)]
            expected = [draw_index(probs[r], torch.Generator().manual_seed(seed * 10 + r)) for r in range(6)]
            assert pick_tokens(logits, cfg, gens) == expected
