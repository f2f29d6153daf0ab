"""Several ranks under torchrun (gloo, 2 processes over 127.0.0.1): each takes its share, and the result is
the one-process result.

The CLI runs as users run it, `torchrun --standalone --nproc-per-node 2 -m probes ...`; the API in
processes started by `torch.multiprocessing.spawn` with torchrun's variables set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from stand_in_hub import opened, stand_in

import probes
from probes.core import distributed

TEXTS = [
    "ROMEO: But soft, what light through yonder window breaks",
    "JULIET: O Romeo, Romeo! wherefore art thou Romeo? " * 6,
    "To be",
    "HAMLET: To be, or not to be, that is the question",
    "a b c d e f g " * 3,
    "MERCUTIO: A plague o' both your houses!",
    "Now is the winter of our discontent made glorious summer",
    "x",
    "Friends, Romans, countrymen, lend me your ears; " * 4,
]


def torchrun(*args, ranks: int = 2, timeout: float = 240, env=None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node N -m probes ARGS`, one thread a rank."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        + ["-m", "probes", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def one_process(*args, timeout: float = 240, env=None) -> subprocess.CompletedProcess:
    """`python -m probes ARGS` with one thread, as each torchrun rank has (the float sums are then the
    same: a product's rounding can depend on the thread count)."""
    return subprocess.run(
        [sys.executable, "-m", "probes", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranks") / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def numbers_equal(a, b, tol: float, path: str = "") -> None:
    """Equal JSON, floats within `tol`; timings left out."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in ("timing", "seconds", "cpu_seconds", "ms_per_1000_tokens", "cpu_ms_per_1000_tokens"):
                numbers_equal(a[k], b[k], tol, f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            numbers_equal(x, y, tol, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= tol, (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "probes", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "capture" in r.stdout


def test_capture_with_two_ranks_writes_what_one_process_writes(tiny_dir, texts_file, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["capture", "-m", tiny_dir, "--dataset", f"FILE:{texts_file}", "--hooks", "resid_post,attn_out"]
    r = torchrun(*common, "--out", two, "--shard-size", "12K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("9 texts") == 1  # rank 0 alone prints
    assert one_process(*common, "--out", one, "--shard-size", "12K").returncode == 0
    files = sorted(p.name for p in one.iterdir())
    assert len(files) > 4 and sorted(p.name for p in two.iterdir()) == files  # no ledger is left
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    a, b = probes.load_activations(one), probes.load_activations(two)
    assert b.complete and len(b) == len(TEXTS)
    for i in range(len(TEXTS)):
        assert torch.equal(a[i].stack("resid_post"), b[i].stack("resid_post"))


def test_lens_and_prune_over_a_dataset_with_two_ranks_equal_one_process(tiny_dir, texts_file):
    for args in (
        ["lens", "--dataset", f"FILE:{texts_file}", "--compare-skip", "1"],
        ["prune", "--skip", "odd", "--skip", "0", "--dataset", f"FILE:{texts_file}", "--max-new-tokens", "5"],
    ):
        r = torchrun(*args, "-m", tiny_dir, "--json")
        assert r.returncode == 0, r.stderr
        one = one_process(*args, "-m", tiny_dir, "--json")
        assert one.returncode == 0, one.stderr
        numbers_equal(json.loads(one.stdout), json.loads(r.stdout), 1e-6)  # one JSON: rank 0's


# A Hub dataset of three data sources (texts 1 and 8 need two windows each), streamed under torchrun: rank 0
# reads sources 0 and 2, rank 1 source 1.
STREAM = [TEXTS[0:4], TEXTS[4:6], TEXTS[6:9]]
HUB = ["--dataset", "HF:someone/corpus", "--streaming"]


@pytest.fixture
def hub(tmp_path):
    return stand_in(tmp_path / "hub", STREAM)


def test_lens_and_prune_over_a_stream_with_two_ranks_read_each_source_on_one_rank_and_equal_one_process(
    tiny_dir, hub
):
    for args in (
        ["lens", *HUB, "--compare-skip", "1"],
        ["prune", "--skip", "odd", "--skip", "0", *HUB, "--max-new-tokens", "5"],
        ["lens", *HUB, "--max-texts", "8"],  # a count in one-process order: every rank reads, keeps its texts
    ):
        hub["log"].unlink(missing_ok=True)
        r = torchrun(*args, "-m", tiny_dir, "--json", env=hub["env"])
        assert r.returncode == 0, r.stderr
        read = opened(hub["log"])
        if "--max-texts" in args:
            assert set(read["0"]) == set(read["1"]) == {"source-0.jsonl", "source-1.jsonl", "source-2.jsonl"}
        else:
            assert set(read["0"]) == {"source-0.jsonl", "source-2.jsonl"} and set(read["1"]) == {
                "source-1.jsonl"
            }
        one = one_process(*args, "-m", tiny_dir, "--json", env=hub["env"])
        assert one.returncode == 0, one.stderr
        numbers_equal(json.loads(one.stdout), json.loads(r.stdout), 1e-6)  # texts named and ordered alike
    assert json.loads(r.stdout)["dataset"]["where"][-1] == "HF:someone/corpus: row 7"


def test_a_streamed_capture_with_two_ranks_writes_what_one_process_writes_and_resumes_in_one(
    tiny_dir, hub, tmp_path
):
    common = ["capture", "-m", tiny_dir, *HUB, "--hooks", "resid_post,attn_out", "--shard-size", "12K"]
    one, two, mended = tmp_path / "one", tmp_path / "two", tmp_path / "mended"
    r = torchrun(*common, "--out", two, env=hub["env"])
    assert r.returncode == 0, r.stderr
    read = opened(hub["log"])
    assert set(read["0"]) == {"source-0.jsonl", "source-2.jsonl"} and set(read["1"]) == {"source-1.jsonl"}
    assert one_process(*common, "--out", one, env=hub["env"]).returncode == 0
    files = sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in two.iterdir()) == files and "shard-00002-00000.safetensors" in files
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    acts = probes.load_activations(two)
    ref = probes.capture(probes.load(tiny_dir), TEXTS, hooks="resid_post,attn_out", out=tmp_path / "list")
    assert acts.complete and acts.texts == [f"HF:someone/corpus: row {i}" for i in range(len(TEXTS))]
    assert [w[0] for s in acts.shards for w in s["windows"]] == [
        w[0] for s in ref.shards for w in s["windows"]
    ]
    for i in range(len(TEXTS)):  # text for text (the list's capture ran with more threads: float rounding)
        torch.testing.assert_close(acts[i].stack("resid_post"), ref[i].stack("resid_post"))
    assert torch.equal(next(acts.rows(batch_size=10**6))["text"], next(ref.rows(batch_size=10**6))["text"])

    # --max-texts counts in one-process order: every rank reads the stream and plans every shard, and
    # writes its share
    r = torchrun(*common, "--max-texts", "8", "--out", tmp_path / "two-8", env=hub["env"])
    assert r.returncode == 0, r.stderr
    assert (
        one_process(*common, "--max-texts", "8", "--out", tmp_path / "one-8", env=hub["env"]).returncode == 0
    )
    files_8 = sorted(p.name for p in (tmp_path / "one-8").iterdir())
    assert sorted(p.name for p in (tmp_path / "two-8").iterdir()) == files_8
    for name in files_8:
        assert (tmp_path / "one-8" / name).read_bytes() == (tmp_path / "two-8" / name).read_bytes(), name

    # A bad row at the end of source 2 (rank 0's) stops the run in one line; what was written stays, and
    # one process resumes it once the stream is mended.
    bad = stand_in(tmp_path / "bad", [*STREAM[:2], [*STREAM[2], 5]])
    r = torchrun(*common, "--out", mended, env={**bad["env"], "PROBES_DIST_TIMEOUT": "60"})
    assert r.returncode != 0 and r.stderr.count("source 3 of 3, row 3's 'text' is not text (int)") == 1, (
        r.stderr
    )
    index = json.loads((mended / "index.json").read_text())
    assert not index["complete"] and index["sources"][0]["done"] and (mended / "index.rank-1.json").exists()
    r = one_process(*common, "--out", mended, "--json", env=hub["env"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["written"]["kept"] > 0
    assert sorted(p.name for p in mended.iterdir()) == files
    for name in files:
        assert (one / name).read_bytes() == (mended / name).read_bytes(), name


def test_tuned_lens_with_two_ranks_trains_the_translators_one_process_trains(tiny_dir, texts_file, tmp_path):
    args = ["tuned-lens", "train", "-m", tiny_dir, "--dataset", f"FILE:{texts_file}", "--steps", "6"]
    args += ["--tokens-per-step", "96", "--optimizer", "adamw", "--lr", "0.01"]
    r = torchrun(*args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr
    assert one_process(*args, "--out", tmp_path / "one").returncode == 0
    model = probes.load(tiny_dir)
    a = probes.load_tuned_lens(tmp_path / "one", model)
    b = probes.load_tuned_lens(tmp_path / "two", model)
    assert a.weight.abs().max() > 1e-3  # it trained
    torch.testing.assert_close(a.weight, b.weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.bias, b.bias, atol=1e-5, rtol=1e-4)
    numbers_equal(a.meta["training"]["heldout"], b.meta["training"]["heldout"], 1e-5)


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
    return int(found[0]) if found else None


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _long_capture(tiny_dir, tmp_path, wait_for: str):
    """(a 2-rank torchrun capture of 360 texts, its args, its folder) once `wait_for` is in the folder."""
    texts = tmp_path / "many.txt"
    texts.write_text("\n".join(TEXTS * 40) + "\n")
    out = tmp_path / "states"
    args = ["capture", "-m", tiny_dir, "--dataset", f"FILE:{texts}", "--hooks", "resid_post", "--out", out]
    args += ["--shard-size", "4K"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = subprocess.Popen(
        cmd + ["-m", "probes", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not (out / wait_for).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the capture ended (or hung) before {wait_for} appeared")
        time.sleep(0.02)
    return proc, args, out


def test_a_killed_rank_stops_the_run_and_the_capture_resumes_with_another_number_of_ranks(tiny_dir, tmp_path):
    proc, args, out = _long_capture(tiny_dir, tmp_path, "index.rank-1.json")  # rank 1 has finished a shard
    try:
        victim = next(p for p in _children(proc.pid) if _rank_of(p) == 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert time.monotonic() - killed < 60  # rank 0 did not wait for the dead rank
    assert re.search(r"rank\s*:\s*1\b", err), err[-2000:]  # torchrun's report names the rank
    index = json.loads((out / "index.json").read_text())
    assert not index["complete"]
    for shard in index["shards"]:  # every shard listed is whole
        assert (out / shard["file"]).stat().st_size > 0
    before = probes.load_activations(out)
    assert not before.complete

    # The same command in one process finishes it (2 ranks, then 1), as an uninterrupted run would.
    r = one_process(*args)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert one_process(*args[:-4], "--out", ref, "--shard-size", "4K").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    for p in ref.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name


def test_a_second_capture_on_a_folder_being_written_is_refused(tiny_dir, tmp_path):
    first, args, out = _long_capture(tiny_dir, tmp_path, "index.json")
    try:
        owner = next(p for p in _children(first.pid) if _rank_of(p) == 0)
        os.kill(owner, signal.SIGSTOP)  # the first run holds the folder, however slow the second starts
        try:
            second = torchrun(*args)
        finally:
            os.kill(owner, signal.SIGCONT)
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "being written by another probes capture" in lines[0], second.stderr
        # torchrun's launcher prints its own report of a failed run; no rank printed a traceback of ours
        assert not re.search(r'File ".*/probes/', second.stderr), second.stderr
        _, err = first.communicate(timeout=240)
        assert first.returncode == 0, err
    finally:
        first.kill()
    assert probes.load_activations(out).complete


def _race(out: str, settings: int, barrier, results) -> None:
    """One of two captures started at the same instant on the same new folder (forked after the load)."""
    model = _RACE["model"]
    torch.set_num_threads(1)  # in the child only: the test process keeps its threads
    barrier.wait()
    try:
        probes.capture(
            model, TEXTS, out=out, hooks="resid_post" if settings else "attn_out", shard_bytes=4096
        )
        results.put((settings, "ok"))
    except probes.ProbesError as e:
        results.put((settings, str(e)))


_RACE: dict = {}


def test_two_captures_started_together_on_one_folder_one_wins(tiny, tmp_path):
    """#28: two captures with different settings, started at the same instant on one new folder: one writes,
    the other fails in one line, however the timing falls; the folder holds the winner's whole capture."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    _RACE["model"] = tiny
    for round_ in range(8):
        out = str(tmp_path / f"race{round_}")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(out, k, barrier, results)) for k in (0, 1)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        got = dict(results.get(timeout=5) for _ in procs)
        winners = [k for k, v in got.items() if v == "ok"]
        assert len(winners) == 1, got
        loser = got[1 - winners[0]]
        assert "\n" not in loser and ("being written by another" in loser or "other settings" in loser), loser
        acts = probes.load_activations(out)
        assert acts.complete and len(acts) == len(TEXTS)
        assert acts.index["hooks"] == (["resid_post"] if winners[0] else ["attn_out"])


def test_commands_that_do_not_split_are_refused_under_torchrun(monkeypatch):
    for var, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    assert distributed.launched()
    r = run_cli("generate", "--prompt", "ROMEO:", "--max-new-tokens", "2")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "runs in one process" in r.stderr


def _api_rank(rank: int, port: int, tiny_dir: str, folder: str, texts: list[str]) -> None:
    """An analysis script as torchrun would run it: probes.load joins the group, the studies split."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    model = probes.load(tiny_dir)
    assert distributed.active() and distributed.size() == 2
    lens = probes.lens_over(model, texts, n_boot=50)
    acts = probes.capture(model, texts, hooks="resid_post", out=Path(folder) / "acts", shard_bytes=4096)
    torch.save(
        {"lens": lens.as_dict(), "complete": acts.complete, "n": len(acts)}, Path(folder) / f"rank{rank}.pt"
    )
    distributed.stop()


def test_the_api_under_torchrun_gives_every_rank_the_one_process_result(tiny, tiny_dir, tmp_path):
    import torch.multiprocessing as tmp

    tmp.spawn(_api_rank, args=(free_port(), str(tiny_dir), str(tmp_path), TEXTS), nprocs=2, join=True)
    ref = probes.lens_over(tiny, TEXTS, n_boot=50).as_dict()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        numbers_equal(ref, got["lens"], 1e-6)
        assert got["complete"] and got["n"] == len(TEXTS)


def _lost_rank(rank: int, port: int, tiny_dir: str, folder: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    os.environ["PROBES_DIST_TIMEOUT"] = "30"
    model = probes.load(tiny_dir)
    if rank == 1:
        os._exit(3)  # dies before the lens sums are combined
    start = time.monotonic()
    try:
        probes.lens_over(model, TEXTS, n_boot=10)
        message = "no error"
    except distributed.RankLost as e:
        message = str(e)
    Path(folder, "rank0.txt").write_text(f"{time.monotonic() - start:.1f}\n{message}")


def test_a_rank_that_dies_is_one_line_on_the_others_not_a_hang(tiny_dir, tmp_path):
    import multiprocessing as mp

    ctx, port = mp.get_context("spawn"), free_port()
    procs = [ctx.Process(target=_lost_rank, args=(r, port, str(tiny_dir), str(tmp_path))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 3]
    seconds, message = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    assert float(seconds) < 30 and "\n" not in message
    assert message.startswith("rank 0: another rank stopped during combining the lens sums"), message


def test_the_share_of_each_rank_covers_every_item_once():
    assert list(distributed.mine(range(5))) == [0, 1, 2, 3, 4]  # one process: everything
    assert np.array_equal(distributed.all_sum(np.arange(3.0)), np.arange(3.0))
    assert distributed.gather("x") == ["x"] and distributed.from_main(7) == 7
