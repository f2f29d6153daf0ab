"""The skip probe: blocks pass the stream through uncomputed, the model is restored exactly."""

from __future__ import annotations

import pytest
import torch
from reference import manual_greedy, manual_logits

import probes
from probes.core.hooks import attached
from probes.core.skip import skipped_blocks
from probes.core.state import hook_count


def test_skipped_block_passes_stream_unchanged_and_is_not_computed(tiny):
    seen = {}

    def rec(t, hook):
        seen[hook.name] = t.clone()

    calls = []
    hooks = [(f"blocks.{i}.hook_resid_{w}", rec) for i in range(4) for w in ("pre", "post")]
    hooks += [(f"blocks.{i}.attn.hook_pattern", lambda t, hook: calls.append(hook.name)) for i in range(4)]
    with probes.skip(tiny, "odd"), attached(tiny, hooks):
        tiny(torch.tensor([[0, 5, 6, 7]], device=tiny.cfg.device))
    for i in (1, 3):
        assert torch.equal(seen[f"blocks.{i}.hook_resid_pre"], seen[f"blocks.{i}.hook_resid_post"])
    assert not torch.equal(seen["blocks.0.hook_resid_pre"], seen["blocks.0.hook_resid_post"])
    assert sorted(calls) == ["blocks.0.attn.hook_pattern", "blocks.2.attn.hook_pattern"]


@pytest.mark.parametrize("spec", ["odd", "even", "first-half", "last-half", "0,3"])
def test_logits_equal_manual_loop_over_kept_blocks(tiny, tiny_hf, spec):
    ids = [0, 11, 200, 31, 7, 99]
    with probes.skip(tiny, spec) as s:
        ours = tiny(torch.tensor([ids], device=tiny.cfg.device))[0].log_softmax(-1)
    ref = manual_logits(tiny_hf, ids, s.kept).log_softmax(-1)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("spec", ["odd", "last-half", "even"])
def test_greedy_generation_equals_seed_method(tiny, tiny_hf, spec):
    with probes.skip(tiny, spec) as s:
        out = probes.generate(tiny, "Now is the winter", max_new_tokens=25, greedy=True)
    assert out[0].tokens == manual_greedy(tiny_hf, out.prompt_tokens, 25, s.kept)


def test_greedy_generation_equals_seed_method_bundled(bundled, bundled_hf):
    for spec in ("odd", "last-half"):
        with probes.skip(bundled, spec) as s:
            out = probes.generate(bundled, "ROMEO:", max_new_tokens=20, greedy=True)
        assert out[0].tokens == manual_greedy(bundled_hf, out.prompt_tokens, 20, s.kept)


def test_model_restored_exactly(tiny):
    ids = torch.tensor([[0, 1, 2, 3]], device=tiny.cfg.device)
    before = tiny(ids)
    with probes.skip(tiny, "odd"):
        during = tiny(ids)
    after = tiny(ids)
    assert torch.equal(before, after) and not torch.equal(before, during)


def test_hook_hygiene_nested_and_after_exception(tiny):
    base = hook_count(tiny)
    with probes.skip(tiny, "odd"):
        inside = hook_count(tiny)
        assert inside > base and skipped_blocks(tiny) == [1, 3]
        with pytest.raises(RuntimeError):
            with probes.skip(tiny, "0,1"):
                assert skipped_blocks(tiny) == [0, 1, 3]
                with attached(tiny, [("blocks.0.hook_resid_pre", lambda t, hook: None)]):
                    assert hook_count(tiny) == inside + 2
                    raise RuntimeError("boom")
        assert skipped_blocks(tiny) == [1, 3] and hook_count(tiny) == inside
    assert skipped_blocks(tiny) == [] and hook_count(tiny) == base


def test_keep_is_the_complement(tiny):
    with probes.skip(tiny, keep="0,2") as s:
        assert skipped_blocks(tiny) == [1, 3] and s.kept == [0, 2]


def test_bad_spec_leaves_model_untouched(tiny):
    base = hook_count(tiny)
    with pytest.raises(probes.ProbesError, match="4 blocks"):
        with probes.skip(tiny, "9"):
            pass
    assert hook_count(tiny) == base


def test_unknown_hook_name_raises(tiny):
    with pytest.raises(probes.ProbesError, match="did you mean blocks.0.hook_resid_pre"):
        with attached(tiny, [("blocks.0.hook_resid_pr", lambda t, hook: None)]):
            pass


def test_reentering_the_same_skip_object_is_refused(tiny):
    s = probes.skip(tiny, "odd")
    with s:
        with pytest.raises(probes.ProbesError, match="already active"):
            with s:
                pass
        assert skipped_blocks(tiny) == [1, 3]
    assert skipped_blocks(tiny) == []


def test_hook_count_counts_only_what_was_attached_after_loading(tiny_dir):
    from probes.core.hooks import hook_keys

    m = probes.load(str(tiny_dir))
    assert m.cfg.n_layers == 4
    assert len(hook_keys(m)) > 0 and hook_count(m) == 0  # the bridge's own hooks are the baseline
    noop = lambda t, hook: None  # noqa: E731
    with attached(
        m, [("blocks.1.hook_resid_post", noop), ("blocks.2.hook_mlp_out", noop), ("hook_embed", noop)]
    ):
        assert hook_count(m) == 3
        with probes.skip(m, "0,3"):
            assert hook_count(m) == 5  # a skipped block is a forward override: counted
        assert hook_count(m) == 3
    assert hook_count(m) == 0 and probes.hook_count is hook_count
