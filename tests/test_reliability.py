"""Reliability: no data loss, no pickle, no silent wrong model, no traceback (issue 17's classes, one test or
more each)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli

import probes
from probes.errors import ProbesError

PROBES = [sys.executable, "-c", "from probes.cli.app import entry; entry()"]


def test_a_file_that_appears_while_saving_is_never_overwritten(tiny, tmp_path, monkeypatch):
    from probes.studies.capture import format as capture_format

    acts = probes.capture(tiny, "Hi")
    path = tmp_path / "s.safetensors"
    real = capture_format.write_tensors

    def racing(tensors, tmp, metadata):  # another run takes the name between the check and the rename
        real(tensors, tmp, metadata)
        path.write_bytes(b"the other run's file")

    monkeypatch.setattr(capture_format, "write_tensors", racing)
    with pytest.raises(ProbesError, match="appeared while this ran"):
        acts.save(path)
    assert path.read_bytes() == b"the other run's file" and os.listdir(tmp_path) == ["s.safetensors"]


def test_two_processes_writing_one_capture_cannot_both_succeed(tiny_dir, tmp_path):
    out = tmp_path / "s.safetensors"
    cmd = [*PROBES, "capture", "-m", str(tiny_dir), "--prompt", "Hi", "--out", str(out)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    assert "already exists" in "".join(err for _, err in results) or "appeared" in "".join(
        err for _, err in results
    )
    assert probes.load_activations(out).prompt == "Hi" and os.listdir(tmp_path) == ["s.safetensors"]


def test_tilde_is_expanded_where_the_file_is_written(tiny_dir, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    r = run_cli("capture", "-m", tiny_dir, "--prompt", "Hi", "--out=~/s.safetensors")
    assert r.exit_code == 0, r.output
    assert (home / "s.safetensors").is_file() and not (tmp_path / "~").exists()
    r = run_cli("capture", "-m", tiny_dir, "--prompt", "Hi", "--out=~/s.safetensors")
    assert r.exit_code == 2 and "already exists" in r.stderr


def test_sigterm_cleans_up_like_ctrl_c(tiny_dir, tmp_path):
    out = tmp_path / "study"
    proc = subprocess.Popen(
        [
            *PROBES,
            "report",
            "-m",
            str(tiny_dir),
            "--out",
            str(out),
            "--max-new-tokens",
            "4",
            "--num-samples",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".study.") for p in tmp_path.iterdir()):
        time.sleep(0.05)  # wait until the report's temporary folder exists
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code == 130, proc.stderr.read()
    assert "interrupted" in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []  # no .study.* left behind, and no half report


_WRITE_FOREVER = """
import os, shutil, sys
from pathlib import Path
from probes.cli.app import _terminate_as_interrupt
from probes.io import staged_folder, write_text
_terminate_as_interrupt()
out = Path(sys.argv[1])
print("ready", flush=True)
try:
    while True:
        write_text(out / "index.json", "x" * 100, force=True)
        with staged_folder(
            out / "report", lambda f: (shutil.rmtree(out / "report", True), os.replace(f, out / "report"))
        ) as tmp:
            (tmp / "a.md").write_text("a")
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_an_interrupt_at_any_instant_leaves_no_temporary_file(tmp_path):
    # Python runs a signal handler at whatever line comes next, also between making a temporary
    # file and entering the `try` that removes it; a few hundred microseconds in every write. So
    # interrupt a loop of atomic writes at random instants: before the fix about 1 in 10 leaked.
    import random

    rng = random.Random(0)
    for i in range(40):
        out = tmp_path / str(i)
        out.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITE_FOREVER, str(out)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
        assert sorted(p.name for p in out.iterdir()) in (["index.json"], ["index.json", "report"], [])


def test_pickled_weights_are_never_read_on_any_path(tiny_dir, tmp_path):
    d = tmp_path / "decoy"
    shutil.copytree(tiny_dir, d)
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Boom()}, d / "pytorch_model.bin")
    m = probes.load(str(d), device_map="cpu")  # the multi-device path too
    assert not marker.exists() and m.cfg.n_layers == 4
    assert (
        probes.generate(m, "Hi", max_new_tokens=3, greedy=True)[0].tokens
        == probes.generate(probes.load(str(tiny_dir)), "Hi", max_new_tokens=3, greedy=True)[0].tokens
    )


def test_skip_from_a_second_thread_is_refused(tiny):
    errors, entered, release = [], threading.Event(), threading.Event()

    def hold():
        with probes.skip(tiny, "odd"):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(10)
    try:
        with pytest.raises(ProbesError, match="another thread"):
            with probes.skip(tiny, "even"):
                errors.append("entered")
    finally:
        release.set()
        t.join()
    assert not errors and probes.skipped_blocks(tiny) == []
    with probes.skip(tiny, "even"):  # free again once the other thread is done
        assert probes.skipped_blocks(tiny) == [0, 2]


def test_a_huge_prompt_file_is_read_from_its_end(tiny, tmp_path):
    from probes.core.prompt import TAIL_BYTES, read_prompt

    f = tmp_path / "big.txt"
    f.write_text(
        "é" * (TAIL_BYTES // 2 + 5) + " the end"
    )  # two bytes a character: the cut lands mid-character
    with pytest.warns(UserWarning, match="reading its last"):
        text = read_prompt(f"FILE:{f}")
    assert text.endswith(" the end") and len(text.encode()) <= TAIL_BYTES
    with pytest.warns(UserWarning):
        out = probes.generate(tiny, f"FILE:{f}", max_new_tokens=2, greedy=True)
    assert len(out.prompt_tokens) == tiny.cfg.n_ctx


def test_non_utf8_argv_and_an_ascii_terminal(tiny_dir):
    r = subprocess.run(
        [*PROBES, "generate", "-m", str(tiny_dir), "--prompt", b"caf\xe9", "--max-new-tokens", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("error:") and "not UTF-8" in r.stderr
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    r = subprocess.run(
        [*PROBES, "lens", "-m", str(tiny_dir), "--prompt", "Ça va, café ☕"],
        capture_output=True,
        text=True,
        env=env,
        errors="replace",
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_usage_errors_are_one_line(tiny_dir):
    for args in (["generate", "--max-new-tokens", "abc"], ["lens", "--bogus"]):
        r = run_cli(*args)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr


def test_a_capture_too_big_is_refused_up_front_with_its_estimate(tiny, tiny_dir, tmp_path):
    from probes.studies.capture.prompt import estimate_bytes

    acts = probes.capture(tiny, "Hi there", hooks=("resid_pre", "pattern", "q", "mlp_post"))
    real = sum(t.numel() * t.element_size() for t in acts.values())
    names = list(acts)
    assert (
        estimate_bytes(tiny, names, len(acts.tokens)) == real
    )  # the estimate is the file's tensors, exactly
    with pytest.raises(ProbesError, match="GiB.*max_bytes=N"):
        probes.capture(tiny, "Hi there", hooks=("resid_pre",), max_bytes=1000)
    r = run_cli(
        "capture", "-m", tiny_dir, "--prompt", "Hi", "--out", tmp_path / "s.safetensors", "--max-bytes", "1K"
    )
    assert r.exit_code == 2 and "--max-bytes" in r.stderr and not (tmp_path / "s.safetensors").exists()
    r = run_cli(
        "capture",
        "-m",
        tiny_dir,
        "--prompt",
        "Hi",
        "--out",
        tmp_path / "s.safetensors",
        "--max-bytes",
        "lots",
    )
    assert r.exit_code == 2 and "K, M, G or T" in r.stderr


@pytest.mark.parametrize(
    "size, words",
    [
        ("inf", "out of range"),
        ("-Infinity", "must be positive"),
        ("1e999G", "out of range"),
        ("NaN", "not a number"),
        ("-3M", "must be positive"),
        ("0", "must be positive"),
        ("0.4", "must be positive"),
        ("20000000T", "out of range"),  # finite, but more bytes than any file can hold
        (float("inf"), "out of range"),
        (1 << 64, "out of range"),
    ],
)
def test_sizes_that_are_not_finite_or_in_range_are_one_line(size, words, tiny, tiny_dir, tmp_path):
    from probes.io import MAX_SIZE, parse_size

    with pytest.raises(ProbesError, match=words):
        parse_size(size, "shard_bytes")
    assert parse_size("7.5K") == 7680 and parse_size(MAX_SIZE) == MAX_SIZE
    with pytest.raises(ProbesError, match=f"max_bytes=.*{words}"):
        probes.capture(tiny, "Hi", max_bytes=size)
    if isinstance(size, str):
        data = tmp_path / "texts.txt"
        data.write_text("one text\n")
        for flag, extra in (("--max-bytes", ["--prompt", "Hi"]), ("--shard-size", ["--dataset", data])):
            r = run_cli("capture", "-m", tiny_dir, *extra, "--out", tmp_path / "o", flag, size)
            assert r.exit_code == 2 and "Traceback" not in r.output, r.output
            assert r.stderr.count("\n") == 1 and f"{flag} '{size}'" in r.stderr and words in r.stderr
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["--version"], ["info", "-m", "{tiny}", "--json"]], ids=["version", "info"])
def test_stdout_that_cannot_be_written_is_one_line_and_a_failure(tiny_dir, args):
    cmd = [*PROBES, *(a.format(tiny=tiny_dir) for a in args)]

    def errors(r):
        return [ln for ln in r.stderr.splitlines() if not ln.startswith("loading")]

    with open("/dev/full", "w") as full:  # a full disk
        r = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 74 and errors(r) == [
        "error: cannot write the output to stdout: No space left on device"
    ], r.stderr
    r = subprocess.run(  # no stdout at all: `probes info >&-`
        cmd, stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1)
    )
    assert r.returncode == 74 and errors(r) == ["error: cannot write the output to stdout: stdout is closed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader has gone, as after `| head -c1`: quiet, and no failure
    code, err = proc.wait(timeout=120), proc.stderr.read()
    assert code == 0 and [ln for ln in err.splitlines() if not ln.startswith("loading")] == [], err


def test_a_context_too_small_for_windows_is_one_line_before_loading(tmp_path):
    from conftest import build_checkpoint

    from probes.cli.common import Target

    ckpt = build_checkpoint(tmp_path / "one-position", n_layer=2, n_embd=32, n_head=2, n_positions=1)
    data = tmp_path / "texts.txt"
    data.write_text("Now is the winter\nof our discontent\n")
    m = probes.load(str(ckpt))
    assert m.cfg.n_ctx == 1 and m.cfg.n_layers == 2
    with pytest.raises(ProbesError, match="context is 1 position.*too small to score"):
        probes.compare_pruned(m, "Hi", [[1]], max_new_tokens=2)
    with pytest.raises(ProbesError, match="too small to score"):
        probes.lens_over(m, f"FILE:{data}")
    with pytest.raises(ProbesError, match="too small to score"):
        probes.train_tuned_lens(m, f"FILE:{data}")
    with pytest.raises(ProbesError, match="too small to hold BOS"):
        probes.capture(m, ["a text", "another"], out=tmp_path / "with-bos")
    acts = probes.capture(m, ["a text", "another"], out=tmp_path / "no-bos", bos=False)  # a token a window
    texts = ["a text", "another"]
    assert acts.summary()["rows"] == sum(
        len(m.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        for args in (
            ["prune", "--max-new-tokens", "2"],
            ["lens", "--dataset", data],
            ["tuned-lens", "train", "--dataset", data, "--out", tmp_path / "lens"],
            ["capture", "--dataset", data, "--out", tmp_path / "states"],
            ["report", "--out", tmp_path / "report"],
        ):
            r = run_cli(*args, "-m", ckpt)
            assert r.exit_code == 2 and r.stderr.count("\n") == 1, (args, r.output)
            assert "context is 1 position" in r.stderr and "too small" in r.stderr
