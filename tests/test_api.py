"""The public surface: what `dir(probes)` offers, short reprs, one sampling config, model state, checks before
loading."""

from __future__ import annotations

import pytest
import torch
from cli_runner import run_cli

import probes
from probes.core.sampling import SamplingConfig, sample_seed
from probes.errors import ProbesError


def test_dir_lists_every_export_and_each_resolves():
    names = dir(probes)
    for name in (
        "load",
        "skip",
        "generate",
        "SamplingConfig",
        "logit_lens",
        "LensResult",
        "capture",
        "Activations",
        "embeddings",
        "Embeddings",
        "compare_pruned",
        "sweep_blocks",
        "build_report",
        "show_token",
    ):
        assert name in names
    for name in names:
        if name != "__version__":
            assert getattr(probes, name) is not None, name
    with pytest.raises(AttributeError):
        probes.no_such_thing  # noqa: B018


def test_result_reprs_are_short_and_say_what_they_hold(tiny):
    results = [
        probes.generate(tiny, "Hi", max_new_tokens=3, greedy=True),
        probes.logit_lens(tiny, "Hi there"),
        probes.generation_lens(tiny, "Hi", max_new_tokens=3, greedy=True),
        probes.capture(tiny, "Hi"),
        probes.embeddings(tiny, words=["king"]),
        probes.next_token_distribution(tiny, "Hi", temperature=[0.5, 2]),
        SamplingConfig(),
    ]
    for r in results:
        text = repr(r)
        assert text.startswith(type(r).__name__ + "(") and len(text) < 200 and "\n" not in text, text


def test_sampling_config_is_the_one_home_of_the_defaults():
    import inspect

    from probes.cli import options as o

    cfg = SamplingConfig()
    assert (cfg.temperature, cfg.top_k, cfg.seed, cfg.max_new_tokens) == (0.8, 200, 1337, 100)
    assert o.SAMPLING == cfg
    # generate takes the config (or overrides of it); it declares no defaults of its own.
    params = inspect.signature(probes.generate).parameters
    assert "temperature" not in params and "seed" not in params and "config" in params
    assert SamplingConfig.of(cfg, top_k=2) == SamplingConfig(top_k=2)
    with pytest.raises(ProbesError, match="unknown sampling option.*tempreature"):
        SamplingConfig.of(None, tempreature=1.0)
    assert SamplingConfig.from_dict(cfg.to_dict()) == cfg


def test_sample_i_does_not_depend_on_how_many_are_drawn(tiny):
    three = probes.generate(tiny, "Hi", num_samples=3, max_new_tokens=6, temperature=1.0, seed=9)
    one = probes.generate(tiny, "Hi", num_samples=1, max_new_tokens=6, temperature=1.0, seed=9)
    assert three[0].tokens == one[0].tokens
    assert sample_seed(9, 0) == 9 and len({sample_seed(9, i) for i in range(100)}) == 100


def test_model_state_lives_on_the_model(tiny):
    from probes.core.state import probes_attached, state_of

    st = state_of(tiny)
    assert st.source.kind == "local" and st.baseline is not None and st.skipped == {}
    with probes.skip(tiny, "odd") as s:
        assert set(st.skipped) == {1, 3} and all(owner is s for owner in st.skipped.values())
        assert not probes_attached(tiny)  # our own skips do not count as probes
        with probes.attached(tiny, [("hook_embed", lambda t, hook: None)]):
            assert probes_attached(tiny)
    assert st.skipped == {} and not probes_attached(tiny)


BEFORE_LOAD = [
    ["prune", "--skip", "99"],
    ["prune", "--sweep", "--skip", "odd"],
    ["prune", "--num-samples", "2"],
    ["generate", "--skip", "odd", "--keep", "0"],
    ["generate", "--seed", str(2**64)],
    ["generate", "--seed", str(-(2**63) - 1)],
    ["generate", "--top-k", "-1"],
    ["lens", "--prompt", "Hi", "--top-k", "5"],
    ["lens", "--prompt", "Hi", "--top", "0"],
    ["lens", "--prompt", "Hi", "--generate", "3", "--compare-skip", "odd"],
    ["lens", "--prompt", "Hi", "--compare-skip", "odd", "--skip", "1"],
    ["capture", "--prompt", "Hi", "--out", "{tmp}/a.safetensors", "--seed", "3"],
    ["capture", "--prompt", "Hi", "--out", "{tmp}/a.safetensors", "--generate", "0"],
    ["next-token", "--top-k", "-2"],
    ["embed", "--top", "-1"],
    ["report", "--out", "{tmp}/r", "--max-new-tokens", "0"],
    ["info", "--dtype", "float8"],
    ["generate", "--threads", "0"],
]


def test_threads_option_sets_torch_threads(tiny_dir):
    before = torch.get_num_threads()
    try:
        r = run_cli("generate", "-m", tiny_dir, "--prompt", "Hi", "--max-new-tokens", "2", "--threads", "1")
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


_BEFORE_LOAD_SCRIPT = """
import io, json, sys, time
from contextlib import redirect_stderr
from probes.cli.app import main
out = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stderr(err):
        code = main(args)
    out.append([code, err.getvalue(), time.perf_counter() - t0, "torch" in sys.modules])
print(json.dumps(out))
"""


def test_bad_values_fail_before_the_model_loads(tmp_path):
    """In a fresh process: each mistake is one line and exit 2 within a second, and torch is never
    imported."""
    import json
    import subprocess
    import sys

    cases = [[a.format(tmp=tmp_path) for a in args] for args in BEFORE_LOAD]
    r = subprocess.run(
        [sys.executable, "-c", _BEFORE_LOAD_SCRIPT, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for args, (code, err, seconds, torch_loaded) in zip(cases, json.loads(r.stdout)):
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (args, err)
        assert not torch_loaded, f"{args}: torch was imported, so the check ran in the slow path"
        assert seconds < 1.0, f"{args}: {seconds:.2f} s"
