"""Generation: cached decoding equals no-cache references, sampling math is exact, runs reproduce."""

from __future__ import annotations

import pytest
import torch
from cli_runner import run_cli
from reference import chi2_quantile, hf_greedy_no_cache, manual_greedy

import probes
from probes.core.draw import sampling_probs
from probes.core.prompt import encode
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError


def test_greedy_equals_no_cache_reference_tiny(tiny, tiny_hf):
    out = probes.generate(tiny, "To be, or not", max_new_tokens=30, greedy=True)
    assert out[0].tokens == hf_greedy_no_cache(tiny_hf, out.prompt_tokens, 30)


def test_greedy_equals_manual_loop_without_bos(tiny, tiny_hf):
    out = probes.generate(tiny, "Shall I compare thee", max_new_tokens=20, greedy=True, bos=False)
    assert out.prompt_tokens[0] != tiny.tokenizer.bos_token_id
    assert out[0].tokens == manual_greedy(tiny_hf, out.prompt_tokens, 20)


def test_generation_past_the_context_slides_the_window(tiny, tiny_hf):
    n_ctx = tiny.cfg.n_ctx  # 64 for the tiny checkpoint
    out = probes.generate(
        tiny, "O Romeo, Romeo! wherefore art thou Romeo?", max_new_tokens=n_ctx + 10, greedy=True
    )
    assert len(out[0].tokens) == n_ctx + 10
    assert out[0].tokens == hf_greedy_no_cache(tiny_hf, out.prompt_tokens, n_ctx + 10)


def test_greedy_equals_no_cache_reference_bundled(bundled, bundled_hf):
    out = probes.generate(bundled, "ROMEO:", max_new_tokens=40, greedy=True)
    assert out[0].tokens == hf_greedy_no_cache(bundled_hf, out.prompt_tokens, 40)


def test_temperature_zero_is_greedy(tiny):
    a = probes.generate(tiny, "Hello", max_new_tokens=10, temperature=0)
    b = probes.generate(tiny, "Hello", max_new_tokens=10, greedy=True, seed=7)
    assert a[0].tokens == b[0].tokens


def test_runs_reproduce_and_samples_differ(tiny):
    a = probes.generate(tiny, "Hello", num_samples=3, max_new_tokens=15, temperature=1.0, seed=3)
    b = probes.generate(tiny, "Hello", num_samples=3, max_new_tokens=15, temperature=1.0, seed=3)
    c = probes.generate(tiny, "Hello", num_samples=3, max_new_tokens=15, temperature=1.0, seed=4)
    assert [s.tokens for s in a] == [s.tokens for s in b]
    assert len({tuple(s.tokens) for s in a}) == 3
    assert [s.tokens for s in a] != [s.tokens for s in c]


def test_long_prompt_is_cropped_from_the_left_with_a_warning(tiny):
    text = " ".join(["word"] * 200)
    with pytest.warns(UserWarning, match="more than the context"):
        ids = encode(tiny, text)
    assert len(ids) == tiny.cfg.n_ctx and ids[-1] == encode(tiny, " word", bos=False)[-1]


def test_a_cropped_prompt_is_shown_as_the_model_reads_it(tiny, tiny_dir, tmp_path):
    """#28 item 21: a prompt longer than the context is shown (in results and headers) as its kept tokens,
    and the warning says how many were cut; it is not echoed whole."""
    text = "".join(f"w{i} " for i in range(400))
    with pytest.warns(UserWarning, match=r"keeping the last 64 \(cutting \d+\)"):
        lens = probes.logit_lens(tiny, text)
    assert lens.prompt.endswith("w399 ") and "w0 " not in lens.prompt and len(lens.prompt) < len(text) / 3
    short = probes.logit_lens(tiny, "w1 w2")
    assert short.prompt == "w1 w2"  # a prompt that fits is kept as given
    path = tmp_path / "long.txt"
    path.write_text(text)
    r = run_cli("generate", "-m", tiny_dir, "--prompt", f"FILE:{path}", "--max-new-tokens", "2")
    assert r.exit_code == 0 and "w0 " not in r.stdout and "w399" in r.stdout and "cutting" in r.stderr


def test_stop_at_eos(tiny):
    eos = tiny.tokenizer.eos_token_id
    bias = torch.zeros(tiny.cfg.d_vocab)
    bias[eos] = 1e4  # force EOS: add a huge logit through the unembedding bias hook

    def force(t, hook):
        return t + bias.to(t.device)

    with probes.attached(tiny, [("unembed.hook_out", force)]):
        out = probes.generate(tiny, "Hi", max_new_tokens=10, greedy=True, stop_at_eos=True)
        full = probes.generate(tiny, "Hi", max_new_tokens=10, greedy=True)
    assert out[0].tokens == [eos] and out[0].stopped_at_eos
    assert len(full[0].tokens) == 10


@pytest.mark.parametrize(
    "bad",
    [
        dict(temperature=-1),
        dict(top_k=-1),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(num_samples=0),
        dict(max_new_tokens=0),
    ],
)
def test_bad_sampling_values(tiny, bad):
    with pytest.raises(ProbesError):
        probes.generate(tiny, "Hi", **{"max_new_tokens": 2, **bad})


def test_file_prompt(tiny, tmp_path):
    f = tmp_path / "prompt.txt"
    f.write_text("To be")
    a = probes.generate(tiny, f"FILE:{f}", max_new_tokens=3, greedy=True)
    b = probes.generate(tiny, "To be", max_new_tokens=3, greedy=True)
    assert a[0].tokens == b[0].tokens
    with pytest.raises(ProbesError, match="cannot read prompt file"):
        probes.generate(tiny, f"FILE:{tmp_path / 'missing.txt'}", max_new_tokens=3)


@pytest.mark.parametrize(
    "settings",
    [SamplingConfig(1.0, None, None), SamplingConfig(10.0, 2, None), SamplingConfig(0.8, 20, 0.9)],
    ids=lambda s: s.label(),
)
def test_first_token_follows_the_computed_distribution(bundled, settings):
    """Chi-square: the empirical first-token distribution over many samples matches sampling_probs."""
    tiny = bundled  # a trained model: a spread-out distribution, unlike the random tiny one
    n = 1500
    prompt = "The king"
    ids = encode(tiny, prompt)
    with torch.no_grad():
        logits = tiny(torch.tensor([ids], device=tiny.cfg.device))[0, -1].cpu()
    expected = sampling_probs(logits, settings).double() * n
    out = probes.generate(
        tiny,
        prompt,
        num_samples=n,
        max_new_tokens=1,
        temperature=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        seed=11,
    )
    counts = torch.bincount(torch.tensor([s.tokens[0] for s in out]), minlength=expected.numel()).double()
    assert counts[expected == 0].sum() == 0  # never draws a token outside top-k / top-p
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    df = int(keep.sum()) - 1
    assert df >= 1
    assert stat < chi2_quantile(df), (stat, df)


def test_sampling_probs_math():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    p = sampling_probs(logits, SamplingConfig(10.0, 2, None))
    ref = torch.softmax(torch.tensor([2.0, 1.0]) / 10, -1)
    torch.testing.assert_close(p[:2], ref)
    assert p[2:].sum() == 0
    p = sampling_probs(logits, SamplingConfig(1.0, None, 0.7))
    full = torch.softmax(logits, -1)  # 0.61, 0.22, ...: the nucleus for 0.7 is the first two
    torch.testing.assert_close(p[:2], full[:2] / full[:2].sum())
    assert p[2:].sum() == 0


def test_generate_inside_skip_equals_manual_kept_blocks(tiny, tiny_hf):
    with probes.skip(tiny, "odd") as s:
        out = probes.generate(tiny, "What light", max_new_tokens=20, greedy=True)
    assert out[0].tokens == manual_greedy(tiny_hf, out.prompt_tokens, 20, kept=s.kept)


def test_next_token_distribution(tiny):
    rep = probes.next_token_distribution(tiny, "The king", temperature=[0.1, 10], top_k=[2, None])
    assert [s.config.label() for s in rep.settings] == ["T=0.1, top-k=2", "T=0.1", "T=10, top-k=2", "T=10"]
    t10k2 = rep.settings[2]
    assert t10k2.support == 2 and t10k2.tokens_for_99 <= 2
    assert rep.settings[3].entropy > rep.raw.entropy > rep.settings[1].entropy
    raw = rep.raw.top_probs
    assert len(raw) == 10 and raw == sorted(raw, reverse=True) and sum(raw) <= 1 + 1e-6
    titles = [ax.get_title() for ax in rep.figure().axes]
    assert titles[0].startswith("raw (T=1, no truncation)") and "T=10, top-k=2" in titles[3]
    assert f"entropy {rep.settings[3].entropy:.2f} nats" in titles[4]
    assert not [
        t for ax in rep.figure().axes for t in ax.texts if t.get_text() == "uniform"
    ]  # named in the title
    # A setting that is the raw distribution (T=1, no top-k) is not drawn twice.
    same = probes.next_token_distribution(tiny, "The king", temperature=[1, 10], top_k=[None])
    titles = [ax.get_title() for ax in same.figure().axes if ax.get_visible()]
    assert len(titles) == 2 and titles[0].startswith("T=1 (the raw distribution)")


def test_bridge_booted_elsewhere_generates_correctly(tiny_dir, tiny_hf):
    """A bridge not made by probes.load lacks the cache adapter; decoding adds it for the run only."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from probes.core.state import hook_count

    hf = GPT2LMHeadModel.from_pretrained(tiny_dir, attn_implementation="eager").eval()
    bridge = TransformerBridge.boot_transformers(
        str(tiny_dir), hf_model=hf, tokenizer=AutoTokenizer.from_pretrained(tiny_dir), device="cpu"
    )
    bridge.enable_compatibility_mode(disable_warnings=True)
    bridge(torch.tensor([[0]]))  # let the bridge wire its lazy hooks first
    before = hook_count(bridge)
    out = probes.generate(bridge, "To be, or not", max_new_tokens=15, greedy=True)
    assert out[0].tokens == hf_greedy_no_cache(tiny_hf, out.prompt_tokens, 15)
    assert hook_count(bridge) == before
