"""Robustness: hooks never left behind, interrupts stop cleanly, runs record what made them."""

from __future__ import annotations

import json
import random

import pytest
import torch
from cli_runner import run_cli

import probes
from probes.core.hooks import attached
from probes.core.skip import skipped_blocks
from probes.core.state import hook_count


class Injected(Exception):
    pass


def _step(model, kind, fail):
    if kind == "generate":
        return probes.generate(model, "Hi", max_new_tokens=3, greedy=True)
    if kind == "capture":
        return probes.capture(model, "Hi there", hooks=("resid_pre", "attn_out"))
    if kind == "lens":
        return probes.logit_lens(model, "Hi there")
    if kind == "genlens":
        return probes.generation_lens(model, "Hi", max_new_tokens=3, greedy=True)
    raise AssertionError(kind)


@pytest.mark.parametrize("seed", range(12))
def test_random_compositions_with_injected_exceptions_leave_no_hooks(tiny, seed):
    rng = random.Random(seed)
    base = hook_count(tiny)

    def nest(depth):
        kind = rng.choice(["skip", "hook", "generate", "capture", "lens", "genlens"])
        fail = rng.random() < 0.35
        if kind == "skip" and depth < 3:
            with probes.skip(tiny, rng.choice(["odd", "even", "0", "last-half", "none"])):
                nest(depth + 1)
                if fail:
                    raise Injected
        elif kind == "hook" and depth < 3:

            def boom(t, hook):
                if fail:
                    raise Injected

            with attached(tiny, [(f"blocks.{rng.randrange(4)}.hook_resid_post", boom)]):
                nest(depth + 1)
        elif kind in ("generate", "capture", "lens", "genlens"):
            _step(tiny, kind, fail)
            if fail:
                raise Injected

    for _ in range(4):
        try:
            nest(0)
        except Injected:
            pass
        assert hook_count(tiny) == base and skipped_blocks(tiny) == []


def test_exception_inside_a_hook_during_generation_restores_everything(tiny):
    base = hook_count(tiny)

    def boom(t, hook):
        raise Injected

    with pytest.raises(Injected):
        with probes.skip(tiny, "odd"), attached(tiny, [("blocks.2.hook_resid_post", boom)]):
            probes.generate(tiny, "Hi", max_new_tokens=5)
    assert hook_count(tiny) == base and skipped_blocks(tiny) == []
    a = probes.generate(tiny, "Hi", max_new_tokens=5, greedy=True)
    assert len(a[0].tokens) == 5


def test_ctrl_c_during_generation_is_a_short_message(tiny_dir, monkeypatch):
    import probes.core.decode as decode_mod

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(decode_mod, "pick_tokens", interrupt)  # how a batch draws its tokens
    r = run_cli(*["generate", "--model", str(tiny_dir), "--prompt", "Hi"])
    assert r.exit_code == 130
    assert "interrupted" in r.stderr and "Traceback" not in r.output + r.stderr


def test_interrupted_capture_keeps_the_old_file(tiny_dir, tmp_path, monkeypatch):
    out = tmp_path / "states.safetensors"
    out.write_bytes(b"old contents")
    from probes.studies.capture import format as capture_format

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(capture_format, "write_tensors", interrupt)
    r = run_cli(*["capture", "--model", str(tiny_dir), "--prompt", "Hi", "--out", str(out), "--force"])
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert out.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["states.safetensors"]  # no temporary file left


def test_interrupted_report_keeps_the_old_folder(tiny_dir, tmp_path, monkeypatch):
    out = tmp_path / "study"
    out.mkdir()
    (out / "report.md").write_text("old")
    (out / ".probes-report.json").write_text('{"files": ["report.md"]}')
    import probes.studies.lens.logit as lens_mod

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lens_mod, "logit_lens", interrupt)
    r = run_cli(
        *[
            "report",
            "--model",
            str(tiny_dir),
            "--out",
            str(out),
            "--force",
            "--max-new-tokens",
            "5",
            "--num-samples",
            "1",
        ]
    )
    assert r.exit_code == 130, r.output
    assert (out / "report.md").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == [".probes-report.json", "report.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


@pytest.mark.parametrize(
    "cmd",
    [
        ["generate", "--prompt", "Hi", "--max-new-tokens", "3", "--seed", "9", "--skip", "odd"],
        ["next-token", "--prompt", "Hi", "--skip", "odd"],
        ["lens", "--prompt", "Hi there", "--skip", "odd"],
        ["embed", "--words", "the,king"],
    ],
)
def test_json_records_model_checksum_versions_and_skips(tiny_dir, cmd):
    r = run_cli(*[*cmd, "--model", str(tiny_dir), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["model"] == str(tiny_dir)
    assert (
        len(d["model_source"]["sha256"]) == 16
        and d["versions"]["probes"]
        and d["versions"]["transformer-lens"]
    )
    if "--skip" in cmd:
        assert d["skipped_blocks"] == [1, 3]
    if "--seed" in cmd:
        assert d["config"]["seed"] == 9


def test_saved_capture_records_the_run(tiny_dir, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run_cli(
        *[
            "capture",
            "--model",
            str(tiny_dir),
            "--prompt",
            "Hi",
            "--out",
            str(out),
            "--skip",
            "odd",
            "--generate",
            "3",
            "--seed",
            "4",
        ]
    )
    assert r.exit_code == 0, r.output
    acts = probes.load_activations(out)
    assert acts.meta.skipped_blocks == [1, 3] and acts.meta.seed == 4
    assert acts.meta.model_sha256 and acts.meta.versions["transformer-lens"] and acts.meta.versions["probes"]


def test_sampling_reproduces_exactly_on_the_bundled_model(bundled):
    a = probes.generate(bundled, "ROMEO:", num_samples=2, max_new_tokens=20, seed=21)
    b = probes.generate(bundled, "ROMEO:", num_samples=2, max_new_tokens=20, seed=21)
    assert [s.tokens for s in a] == [s.tokens for s in b]
    with probes.skip(bundled, "odd"):
        c = probes.generate(bundled, "ROMEO:", num_samples=2, max_new_tokens=20, seed=21)
        d = probes.generate(bundled, "ROMEO:", num_samples=2, max_new_tokens=20, seed=21)
    assert [s.tokens for s in c] == [s.tokens for s in d]
    assert torch.is_grad_enabled()  # no probe leaves autograd switched off globally
