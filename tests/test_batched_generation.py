"""Batched generation: several samples and prompts decoded together give what each gives alone."""

from __future__ import annotations

import pytest
import torch

import probes
from probes.errors import ProbesError

PROMPTS = ["Hi", "Hello there my good friend, how are", "x y"]


def hf_greedy(hf, ids: list[int], n: int, n_ctx: int) -> list[int]:
    """Greedy decoding with transformers' own forward, no cache: the whole (cropped) sequence each step."""
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            window = ids[-n_ctx:]
            logits = hf(torch.tensor([window], device=hf.device)).logits[0, -1]
            out.append(int(logits.argmax()))
            ids.append(out[-1])
    return out


@pytest.mark.parametrize("fast", [True, False])
def test_greedy_batch_of_prompts_equals_transformers_prompt_by_prompt(tiny, tiny_hf, fast, monkeypatch):
    if not fast:
        monkeypatch.setenv("PROBES_FAST_PATH", "0")
    n = 80  # past the context of 64: the windows slide while rows differ in length
    runs = probes.generate(tiny, PROMPTS, greedy=True, max_new_tokens=n)
    assert [r.prompt for r in runs] == PROMPTS
    for run in runs:
        assert run[0].tokens == hf_greedy(tiny_hf, run.prompt_tokens, n, tiny.cfg.n_ctx), run.prompt


def test_sample_i_does_not_depend_on_batch_size_or_count(tiny):
    cfg = probes.SamplingConfig(temperature=1.0, top_k=50, seed=7, max_new_tokens=25, num_samples=6)
    one_by_one = probes.generate(tiny, "Hi there", cfg, batch_size=1)
    together = probes.generate(tiny, "Hi there", cfg, batch_size=6)
    pairs = probes.generate(tiny, "Hi there", cfg, batch_size=4)
    fewer = probes.generate(tiny, "Hi there", cfg, num_samples=3)
    assert [s.tokens for s in together] == [s.tokens for s in one_by_one] == [s.tokens for s in pairs]
    assert [s.tokens for s in fewer] == [s.tokens for s in together][:3]
    assert len({tuple(s.tokens) for s in together}) > 1  # the samples do differ
    assert together.timing["batch_size"] == 6


def test_many_prompts_sampled_together_equal_each_alone(tiny):
    cfg = probes.SamplingConfig(temperature=0.9, top_p=0.95, seed=3, max_new_tokens=30, num_samples=2)
    runs = probes.generate(tiny, PROMPTS, cfg)
    for p, run in zip(PROMPTS, runs):
        alone = probes.generate(tiny, p, cfg)
        assert [s.tokens for s in run] == [s.tokens for s in alone]
        assert [s.text for s in run] == [s.text for s in alone]


def test_batches_work_with_skipped_blocks_and_attached_probes(tiny):
    seen = []
    with probes.skip(tiny, "odd"):
        batched = probes.generate(tiny, PROMPTS, greedy=True, max_new_tokens=12)
        alone = [probes.generate(tiny, p, greedy=True, max_new_tokens=12) for p in PROMPTS]
        with probes.attached(tiny, [("blocks.0.hook_resid_pre", lambda t, hook: seen.append(t.shape))]):
            hooked = probes.generate(tiny, PROMPTS, greedy=True, max_new_tokens=12)
    assert [r[0].tokens for r in batched] == [r[0].tokens for r in alone] == [r[0].tokens for r in hooked]
    assert seen and seen[0][0] == len(PROMPTS)  # the probe saw the batch, all rows at once


def test_rows_stop_at_eos_on_their_own(tiny):
    """A row that draws EOS stops there; the others go on."""
    eos = tiny.tokenizer.eos_token_id
    cfg = probes.SamplingConfig(
        temperature=3.0, top_k=None, seed=11, max_new_tokens=60, num_samples=8, stop_at_eos=True
    )
    batched = probes.generate(tiny, "Hi", cfg)
    alone = probes.generate(tiny, "Hi", cfg, batch_size=1)
    assert [s.tokens for s in batched] == [s.tokens for s in alone]
    for s in batched:
        assert (s.tokens[-1] == eos) == s.stopped_at_eos
        assert eos not in s.tokens[:-1]


def test_a_token_id_prompt_is_still_one_prompt(tiny):
    ids = tiny.tokenizer("Hi there", add_special_tokens=False)["input_ids"]
    one = probes.generate(tiny, ids, greedy=True, max_new_tokens=5)
    assert isinstance(one, probes.Samples) and one.prompt_tokens == ids
    two = probes.generate(tiny, [ids, ids[:1]], greedy=True, max_new_tokens=5)
    assert isinstance(two, list) and len(two) == 2 and two[0][0].tokens == one[0].tokens


def test_bad_batch_size_is_refused(tiny):
    with pytest.raises(probes.ProbesError, match="batch_size"):
        probes.generate(tiny, "Hi", batch_size=0)


def test_a_sampling_grid_decodes_together_and_equals_each_setting_alone(tiny):
    grid = [
        probes.SamplingConfig(temperature=t, top_k=k, seed=5, max_new_tokens=15, num_samples=2)
        for t in (0.1, 1.0, 10.0)
        for k in (2, None)
    ] + [probes.SamplingConfig(greedy=True, max_new_tokens=15)]
    runs = probes.generate(tiny, "Hi there", grid)
    assert [r.config for r in runs] == grid
    for cfg, run in zip(grid, runs):
        assert [s.tokens for s in run] == [s.tokens for s in probes.generate(tiny, "Hi there", cfg)]
    both = probes.generate(tiny, ["Hi there", "x"], grid[:2])
    assert [[s.tokens for s in r] for r in both[0]] == [[s.tokens for s in r] for r in runs[:2]]
    with pytest.raises(probes.ProbesError, match="share max_new_tokens"):
        probes.generate(tiny, "Hi", [grid[0], probes.SamplingConfig(max_new_tokens=3)])


def test_cli_prompts_file_equals_each_prompt_alone(tiny_dir, tmp_path):
    import json

    from cli_runner import run_cli

    (tmp_path / "p.txt").write_text("Hi there\n\nx y z\n")
    r = run_cli(
        "generate",
        "-m",
        tiny_dir,
        "--prompts",
        tmp_path / "p.txt",
        "-n",
        "2",
        "--max-new-tokens",
        "8",
        "--temperature",
        "1,2",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert [p["where"].rsplit(":", 1)[1] for p in d["prompts"]] == ["1", "3"]
    for item in d["prompts"]:
        for run in item["grid"]:
            alone = run_cli(
                "generate",
                "-m",
                tiny_dir,
                "--prompt",
                item["prompt"],
                "-n",
                "2",
                "--max-new-tokens",
                "8",
                "--temperature",
                str(run["config"]["temperature"]),
                "--json",
            )
            assert [s["tokens"] for s in run["samples"]] == [
                s["tokens"] for s in json.loads(alone.stdout)["samples"]
            ]
    text = run_cli("generate", "-m", tiny_dir, "--prompts", tmp_path / "p.txt", "--max-new-tokens", "3")
    assert text.exit_code == 0 and "=== prompt 2/2" in text.stdout and "x y z" in text.stdout
    # --max-texts and --split choose prompts as they choose texts elsewhere.
    (tmp_path / "q.txt").write_text("A b\nc d\n\nE f\n\nG h\n")
    r = run_cli(
        "generate",
        "-m",
        tiny_dir,
        "--prompts",
        tmp_path / "q.txt",
        "--split",
        "paragraphs",
        "--max-texts",
        "2",
        "--max-new-tokens",
        "2",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    assert [p["prompt"] for p in json.loads(r.stdout)["prompts"]] == ["A b\nc d", "E f"]
    r = run_cli("generate", "-m", tiny_dir, "--max-texts", "2")
    assert r.exit_code == 2 and "give --prompts" in r.stderr


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.txt", "\n \n", ["empty.txt", "holds no texts"]),
        ("notext.jsonl", '{"text": "a"}\n{"body": "b"}\n', ["notext.jsonl:2", "no 'text' field"]),
    ],
)
def test_cli_bad_prompts_file_is_one_line_naming_the_line(tmp_path, name, content, words):
    from cli_runner import run_cli

    (tmp_path / name).write_text(content)
    r = run_cli("generate", "--prompts", tmp_path / name)
    assert r.exit_code == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error:") and all(w in line for w in words)


@pytest.mark.parametrize("fast", [True, False])
def test_rows_that_skip_different_blocks_equal_each_skip_set_alone(tiny, tiny_hf, fast, monkeypatch):
    # prune's runs (full, odd, even, last-half) decode as one batch, each row leaving out its own
    # blocks: on the fused runner in one forward, through the bridge one skip set's rows at a time.
    from probes.core.generate import generate_runs
    from probes.core.runner.fused import FusedDecoder
    from probes.core.runner.hooked import HookedDecoder

    monkeypatch.setenv("PROBES_FAST_PATH", "1" if fast else "0")
    runs = [[], [1, 3], [0, 2], [2, 3]]
    batches = []
    decoder = FusedDecoder if fast else HookedDecoder
    real = decoder.__call__
    monkeypatch.setattr(
        decoder, "__call__", lambda self, ids, *a, **k: batches.append(len(ids)) or real(self, ids, *a, **k)
    )

    def generate_skips(model, prompt, cfg, sets):
        return generate_runs(model, [(prompt, cfg, layers) for layers in sets])

    for cfg in (
        probes.SamplingConfig(greedy=True, max_new_tokens=70),
        probes.SamplingConfig(temperature=1.0, seed=4, max_new_tokens=20, num_samples=2),
    ):
        batches.clear()
        together = generate_skips(tiny, "Hello there my good", cfg, runs)
        assert set(batches) == {len(runs) * cfg.num_samples}
        for layers, samples in zip(runs, together):
            with probes.skip(tiny, layers):
                alone = probes.generate(tiny, "Hello there my good", cfg)
            assert [s.tokens for s in samples] == [s.tokens for s in alone], layers
    with probes.skip(tiny, [3]):  # the model's own skips apply to every row as well
        inside = generate_skips(tiny, "Hi", probes.SamplingConfig(greedy=True, max_new_tokens=70), [[], [0]])
    assert inside[0][0].tokens == hf_greedy_skipping(
        tiny_hf, inside[0].prompt_tokens, 70, tiny.cfg.n_ctx, {3}
    )
    assert inside[1][0].tokens == hf_greedy_skipping(
        tiny_hf, inside[1].prompt_tokens, 70, tiny.cfg.n_ctx, {0, 3}
    )


def test_runs_of_several_prompts_settings_and_skip_sets_decode_together_as_each_alone(tiny, monkeypatch):
    # The report decodes its four sampling settings and prune's four runs (another prompt, greedy)
    # as one batch: 2 x 2 + 4 = 8 rows of two prompt lengths, some rows skipping blocks.
    from probes.core.generate import generate_runs
    from probes.core.runner.fused import FusedDecoder

    monkeypatch.setenv("PROBES_FAST_PATH", "1")  # counts the fused decoder's batches
    sampled = [
        probes.SamplingConfig(temperature=t, top_k=k, seed=5, max_new_tokens=25, num_samples=2)
        for t, k in ((0.8, 20), (1.5, None))
    ]
    greedy = probes.SamplingConfig(greedy=True, max_new_tokens=25)
    runs = [("Hello there my good", c, []) for c in sampled] + [
        ("Hi", greedy, layers) for layers in ([], [1, 3], [0, 2], [2, 3])
    ]
    batches = []
    real = FusedDecoder.__call__
    monkeypatch.setattr(
        FusedDecoder,
        "__call__",
        lambda self, ids, *a, **k: batches.append(len(ids)) or real(self, ids, *a, **k),
    )
    together = generate_runs(tiny, runs)
    assert set(batches) == {8}
    for (prompt, cfg, layers), samples in zip(runs, together):
        with probes.skip(tiny, layers):
            alone = probes.generate(tiny, prompt, cfg)
        assert [s.tokens for s in samples] == [s.tokens for s in alone], (prompt, cfg.label(), layers)
        assert samples.prompt == prompt and samples.config == cfg
    # Runs that differ in length decode in separate batches; a batch of 3 rows per call is kept.
    batches.clear()
    split = generate_runs(
        tiny, runs[:2] + [("Hi", probes.SamplingConfig(greedy=True, max_new_tokens=5), [1])], batch_size=3
    )
    assert sorted(batches, reverse=True)[:1] == [3] and 1 in batches
    assert [s.tokens for s in split[0]] == [s.tokens for s in together[0]]


def test_prune_takes_runs_decoded_elsewhere_and_refuses_others(tiny):
    from probes.core.generate import generate_runs

    cfg = probes.SamplingConfig(greedy=True, max_new_tokens=12)
    decoded = generate_runs(tiny, [("Hi", cfg, layers) for layers in ([], [1, 3], [0, 2])])
    given = probes.compare_pruned(tiny, "Hi", ["odd", "even"], cfg, evaluate=False, samples=decoded)
    own = probes.compare_pruned(tiny, "Hi", ["odd", "even"], cfg, evaluate=False)
    untimed = lambda comp: [{k: v for k, v in run.items() if k != "timing"} for run in comp.as_dict()["runs"]]  # noqa: E731
    assert untimed(given) == untimed(own)
    with pytest.raises(ProbesError, match="give 3 runs"):
        probes.compare_pruned(tiny, "Hi", ["odd", "even"], cfg, evaluate=False, samples=decoded[:2])
    with pytest.raises(ProbesError, match="not decoded from this prompt"):
        probes.compare_pruned(tiny, "Hello", ["odd", "even"], cfg, evaluate=False, samples=decoded)


def hf_greedy_skipping(hf, ids: list[int], n: int, n_ctx: int, skipped: set[int]) -> list[int]:
    """Greedy decoding with transformers' forward, no cache, the `skipped` blocks replaced by the identity."""
    blocks = hf.transformer.h
    saved = [blocks[i].forward for i in skipped]
    try:
        for i in skipped:
            blocks[i].forward = lambda hidden_states, *a, **k: hidden_states  # GPT2Block returns the stream
        return hf_greedy(hf, ids, n, n_ctx)
    finally:
        for i, f in zip(skipped, saved):
            blocks[i].forward = f
