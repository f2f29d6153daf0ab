"""Sampling grids: every combination in one load, each exactly a separate run with the same seed."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli

import probes
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError
from probes.studies.sampling_grid import SamplingGrid
from probes.studies.settings import comma_list, grid_configs, sampling_lists


def test_grid_equals_one_by_one_runs_token_for_token(tiny):
    base = SamplingConfig(max_new_tokens=7, num_samples=2, seed=11)
    grid = probes.generate_grid(tiny, "Hi", base, temperature=[0.5, 3.0], top_k=[0, 5], top_p=[None, 0.8])
    expected = [(t, k, p) for t in (0.5, 3.0) for k in (None, 5) for p in (None, 0.8)]
    assert [(c.temperature, c.top_k, c.top_p) for c in grid.configs] == expected
    for run, (t, k, p) in zip(grid, expected):
        alone = probes.generate(tiny, "Hi", base, temperature=t, top_k=k, top_p=p)
        assert [s.tokens for s in run] == [s.tokens for s in alone] and len(run) == 2
        assert run.config == alone.config and run.config.seed == 11
    # The settings really differ: a hot, untruncated run is not the cold one.
    assert [s.tokens for s in grid.runs[0]] != [s.tokens for s in grid.runs[4]]


def test_a_grid_of_many_prompts_is_one_grid_per_prompt(tiny, tmp_path):
    cfg = SamplingConfig(max_new_tokens=3, num_samples=2, seed=5)
    prompts = ["ROMEO:", [7, 21, 3]]
    grids = probes.generate_grid(tiny, prompts, cfg, temperature=[0.6, 2.5], top_k=[0, 4])
    assert isinstance(grids, list) and len(grids) == 2 and all(isinstance(g, SamplingGrid) for g in grids)
    for grid, prompt in zip(grids, prompts):
        alone = probes.generate_grid(tiny, prompt, cfg, temperature=[0.6, 2.5], top_k=[0, 4])
        assert grid.prompt == alone.prompt and grid.prompt_tokens == alone.prompt_tokens
        assert [[s.tokens for s in r] for r in grid] == [[s.tokens for s in r] for r in alone]
        assert grid.as_dict()["prompt"] == alone.prompt and len(grid.as_dict()["grid"]) == 4
    path = tmp_path / "prompts.txt"
    path.write_text("JULIET:\nHi\n", encoding="utf-8")
    seen = []
    streamed = probes.generate_grid(
        tiny, probes.Dataset(f"FILE:{path}"), cfg, top_p=[0.5, 0.9], on_setting=lambda i, c: seen.append(i)
    )
    assert [g.prompt for g in streamed] == ["JULIET:", "Hi"] and seen == [0, 1, 0, 1]
    assert [s.tokens for s in streamed[1].runs[1]] == [
        s.tokens for s in probes.generate(tiny, "Hi", cfg, top_p=0.9)
    ]


def test_grid_keeps_the_configs_values_where_nothing_varies(tiny):
    cfg = SamplingConfig(temperature=0.7, top_k=3, max_new_tokens=4)
    grid = probes.generate_grid(tiny, "Hi", cfg, temperature=[0.7, 2.0])
    assert [(c.temperature, c.top_k) for c in grid.configs] == [(0.7, 3), (2.0, 3)]
    assert len(grid) == 2 and grid.prompt_tokens == probes.generate(tiny, "Hi", cfg).prompt_tokens
    text = repr(grid)
    assert text.startswith("SamplingGrid(2 settings") and "T=2, top-k=3" in text and len(text) < 200


def test_grid_dict_shape(tiny):
    grid = probes.generate_grid(tiny, "Hi", temperature=[0.5, 2.0], max_new_tokens=3, seed=4)
    d = grid.as_dict()
    assert set(d) == {"prompt", "prompt_tokens", "grid", "timing"} and len(d["grid"]) == 2
    for entry, run in zip(d["grid"], grid):
        assert set(entry) == {"config", "samples"}
        assert SamplingConfig.from_dict(entry["config"]) == run.config
        assert [s["tokens"] for s in entry["samples"]] == [s.tokens for s in run]
    # the settings were decoded together, so one timing covers them all
    assert d["timing"]["new_tokens"] == 6 and d["timing"]["decoded_with"] == {"prompts": 1, "settings": 2}


def test_bad_grids_raise_before_generating(tiny):
    calls = []
    with pytest.raises(ProbesError, match="temperature"):
        probes.generate_grid(tiny, "Hi", temperature=[1.0, -1.0], on_setting=lambda i, c: calls.append(i))
    with pytest.raises(ProbesError, match="greedy"):
        probes.generate_grid(tiny, "Hi", greedy=True, top_k=[2, 5], on_setting=lambda i, c: calls.append(i))
    assert calls == []


def test_comma_lists_are_parsed_once_for_every_command():
    assert comma_list(" 0.1, 1,10", "--temperature", float, "0.1,1,10") == [0.1, 1.0, 10.0]
    assert sampling_lists("1", "0,2", None) == ([1.0], [0, 2], [None])
    assert [c.top_k for c in grid_configs([1.0], [0, 2])] == [None, 2]
    for text, words in [
        ("", "comma list like"),
        ("1,,2", "empty item"),
        ("1,x", "'x'"),
        (",", "comma list like"),
    ]:
        with pytest.raises(ProbesError, match=words):
            comma_list(text, "--temperature", float, "0.1,1,10")
    with pytest.raises(ProbesError, match="'2.5'"):
        comma_list("2,2.5", "--top-k", int, "2,200")


def test_cli_grid_matches_separate_runs_and_single_value_output_is_unchanged(tiny_dir):
    common = ["generate", "-m", tiny_dir, "--prompt", "Hi", "--max-new-tokens", "6", "-n", "2", "--seed", "3"]
    r = run_cli(*common, "--temperature", "0.5,4", "--top-k", "0,3", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert "samples" not in d and [(g["config"]["temperature"], g["config"]["top_k"]) for g in d["grid"]] == [
        (0.5, None),
        (0.5, 3),
        (4.0, None),
        (4.0, 3),
    ]
    for g in d["grid"]:
        c = g["config"]
        one = run_cli(
            *common, "--temperature", str(c["temperature"]), "--top-k", str(c["top_k"] or 0), "--json"
        )
        alone = json.loads(one.stdout)
        assert "grid" not in alone and alone["samples"] == g["samples"] and alone["config"] == c

    text = run_cli(*common, "--temperature", "0.5,4", "--top-k", "3")
    assert text.exit_code == 0, text.output
    out = text.stdout
    assert (
        out.index("=== T=0.5, top-k=3 ===") < out.index("=== T=4, top-k=3 ===")
        and out.count("--- sample 1/2 ---") == 2
    )
    assert (
        "settings, each with seed 3" in out and "1 prompt x 2 settings in batches of 4" in text.stderr
    )  # one batch

    single = run_cli(*common, "--temperature", "0.5", "--top-k", "3")
    assert (
        "===" not in single.stdout
        and single.stdout.startswith("model ")
        and "; T=0.5, top-k=3; seed 3" in single.stdout
    )


def test_cli_grid_streams_under_a_header_per_setting(tiny_dir):
    r = run_cli(
        "generate", "-m", tiny_dir, "--prompt", "Hi", "--max-new-tokens", "3", "-t", "0.5,2", "--stream"
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.index("=== T=0.5, top-k=200 ===") < r.stdout.index("=== T=2, top-k=200 ===")
    assert r.stdout.count("--- sample 1/1 ---") == 2
