"""Capture over a dataset: rows equal one-prompt captures and transformers, shards resume byte for byte,
writes stay whole."""

from __future__ import annotations

import errno
import json

import pytest
import torch
from cli_runner import run_cli

import probes
from probes.core.dataset import Dataset
from probes.errors import ProbesError
from probes.progress import Progress, Task
from probes.studies.capture import format as capture_format
from probes.studies.capture.shards import ShardedActivations

# The tiny model's context is 64: the long text spans several windows.
TEXTS = [
    "ROMEO: But soft, what light",
    "JULIET: O Romeo, Romeo! " * 12,
    "To be",
    "HAMLET: To be, or not to be, that is the question",
    "a b c d e f g " * 3,
]


def centred(x: torch.Tensor) -> torch.Tensor:
    # Compatibility mode centres the writing weights, so the stream lacks its per-position mean.
    return x - x.mean(-1, keepdim=True)


def window_ids(model, text: str) -> list[list[int]]:
    """The windows of `text` as the capture cuts them, computed here by hand: BOS + the next n_ctx - 1
    tokens."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    step = model.cfg.n_ctx - 1
    bos = model.tokenizer.bos_token_id
    return [[bos, *ids[i : i + step]] for i in range(0, len(ids), step)]


def test_rows_of_each_text_equal_the_one_prompt_capture_of_each_window(tiny, tmp_path):
    hooks = ("resid_pre", "mlp_out", "q", "ln1.hook_normalized", "resid_post")
    before = probes.hook_count(tiny)
    # The forward stops at the last block's resid_post, which is recorded too; the stop leaves no hook behind.
    acts = probes.capture(tiny, TEXTS, hooks=hooks, layers="0,2-3", out=tmp_path / "s", shard_bytes=20_000)
    assert probes.hook_count(tiny) == before
    assert isinstance(acts, ShardedActivations) and len(acts) == len(TEXTS) and len(acts.shards) > 2
    for i, text in enumerate(TEXTS):
        ws = window_ids(tiny, text)
        assert len(acts.index["texts"][i]) and acts.index["texts"][i]["windows"] == len(ws)
        got = acts[i]
        assert got.tokens.tolist() == [t for w in ws for t in w]
        for name in ("resid_pre", "mlp_out", "q", "resid_post"):
            # each window alone through the one-prompt path, its ids fed exactly as given
            want = torch.cat(
                [probes.capture(tiny, w, hooks=hooks, layers="0,2-3").stack(name) for w in ws], dim=1
            )
            torch.testing.assert_close(got.stack(name), want, atol=2e-5, rtol=1e-5)  # (layer, pos, ...)
        assert got.layers == [0, 2, 3] and got.str_tokens[0] == "<|endoftext|>"
    assert acts.stack("q", 3).shape == (
        3,
        len(window_ids(tiny, TEXTS[3])[0]),
        tiny.cfg.n_heads,
        tiny.cfg.d_head,
    )
    assert acts[3].prompt == TEXTS[3]


def test_resid_post_equals_transformers_hidden_states(tiny, tiny_hf, tmp_path):
    acts = probes.capture(tiny, Dataset(TEXTS[:4]), hooks="resid_post", out=tmp_path / "s")
    n = tiny.cfg.n_layers
    for i, text in enumerate(TEXTS[:4]):
        rows = acts[i].stack("resid_post")  # (layer, pos, d_model)
        done = 0
        for w in window_ids(tiny, text):
            with torch.no_grad():
                hidden = tiny_hf(
                    torch.tensor([w], device=tiny_hf.device), output_hidden_states=True
                ).hidden_states
            for layer in range(n - 1):  # transformers' last hidden state has the final norm applied
                torch.testing.assert_close(
                    rows[layer, done : done + len(w)], centred(hidden[layer + 1][0]).cpu(), atol=1e-4, rtol=0
                )
            done += len(w)
        assert done == rows.shape[1]


@pytest.mark.parametrize("store", ["float16", "bfloat16"])
def test_storage_dtype_is_the_float32_capture_rounded(tiny, tmp_path, store):
    full = probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "f32")
    half = probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / store, store_dtype=store)
    assert full.dtype == "float32" and half.dtype == store
    for a, b in zip(full, half):
        assert b["blocks.1.hook_resid_post"].dtype == getattr(torch, store)
        assert torch.equal(
            a["blocks.1.hook_resid_post"].to(getattr(torch, store)), b["blocks.1.hook_resid_post"]
        )


def test_shards_are_bounded_and_rows_stream_in_order(tiny, tmp_path):
    limit = 30_000
    acts = probes.capture(tiny, TEXTS, hooks="resid_pre,resid_post", out=tmp_path / "s", shard_bytes=limit)
    row_bytes = 2 * tiny.cfg.n_layers * tiny.cfg.d_model * 4 + 24
    for shard in acts.shards:
        rows = shard["rows"][1] - shard["rows"][0]
        assert rows * row_bytes <= limit or len(shard["windows"]) == 1  # one window is never split
    texts = [acts[i] for i in range(len(acts))]
    name = "blocks.2.hook_resid_post"
    batches = list(acts.rows([name], batch_size=37))
    assert [len(b["tokens"]) for b in batches[:-1]] == [37] * (len(batches) - 1)
    joined = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    assert set(joined) == {name, "tokens", "text", "position"}
    assert torch.equal(joined[name], torch.cat([t[name] for t in texts]))
    assert torch.equal(joined["tokens"], torch.cat([t.tokens for t in texts]))
    assert joined["text"].tolist() == [i for i, t in enumerate(texts) for _ in t.tokens]
    assert (joined["position"] == 0).sum() == sum(
        len(window_ids(tiny, t)) for t in TEXTS
    )  # one BOS per window
    assert len(joined["tokens"]) == acts.n_rows
    with pytest.raises(ProbesError, match="resid_post"):
        next(acts.rows("blocks.2.hook_resid_pos"))


def test_load_activations_gives_the_lazy_view(tiny, tmp_path):
    probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=20_000)
    acts = probes.load_activations(tmp_path / "s")
    assert isinstance(acts, ShardedActivations) and acts.complete and len(acts) == len(TEXTS)
    assert repr(acts).startswith(
        f"ShardedActivations('{tmp_path / 's'}': 5 texts, {acts.n_rows} rows, 4 tensors,"
    )
    assert acts.texts == [f"text {i}" for i in range(len(TEXTS))]
    assert [a.tokens.tolist() for a in acts] == [acts[i].tokens.tolist() for i in range(len(TEXTS))]
    assert torch.equal(acts[-1].tokens, acts[len(TEXTS) - 1].tokens)
    with pytest.raises(IndexError):
        acts[len(TEXTS)]
    # Short names, as Activations takes them: rows() reads every block's tensor; stack() of the whole dataset.
    full = [f"blocks.{i}.hook_resid_post" for i in range(tiny.cfg.n_layers)]
    batch = next(acts.rows("resid_post", batch_size=10_000))
    assert set(batch) == {*full, "tokens", "text", "position"}
    whole = acts.stack("resid_post")  # (layer, rows, d_model)
    assert whole.shape == (tiny.cfg.n_layers, acts.n_rows, tiny.cfg.d_model)
    assert torch.equal(whole, torch.cat([a.stack("resid_post") for a in acts], dim=1))
    assert torch.equal(acts.stack("resid_post", 2), acts[2].stack("resid_post"))
    with pytest.raises(ProbesError, match="'resid_psot' was not captured; did you mean resid_post"):
        next(acts.rows("resid_psot"))


def test_stack_with_index_says_where_each_row_came_from(tiny, tmp_path):
    acts = probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=40_000)
    assert len(acts.shards) > 1
    # The index computed here by hand: each text's windows, each window's rows from its BOS.
    where = [
        (i, p, t) for i, text in enumerate(TEXTS) for w in window_ids(tiny, text) for p, t in enumerate(w)
    ]
    stacked, index = acts.stack("resid_post", with_index=True)
    assert torch.equal(stacked, acts.stack("resid_post"))  # (layer, rows, d_model)
    assert set(index) == {"text", "position", "tokens"} and all(
        v.shape == (acts.n_rows,) for v in index.values()
    )
    assert list(zip(*(index[k].tolist() for k in ("text", "position", "tokens")))) == where
    # One text: its rows only (some texts share a shard with the one before), by a negative number too.
    for i in range(len(TEXTS)):
        one, mine = acts.stack("resid_post", i - len(TEXTS), with_index=True)
        assert torch.equal(one, acts[i].stack("resid_post"))
        assert list(zip(*(mine[k].tolist() for k in ("text", "position", "tokens")))) == [
            x for x in where if x[0] == i
        ]


class Writes:
    """capture_format.write_tensors wrapped: counts calls, checks the index on disk each time, fails on call
    `fail_at`."""

    def __init__(self, folder, fail_at=None, error=KeyboardInterrupt):
        self.folder, self.fail_at, self.error, self.calls = folder, fail_at, error, 0
        self.real = capture_format.write_tensors

    def __call__(self, tensors, path, metadata):
        self.calls += 1
        assert_whole(self.folder)
        if self.calls == self.fail_at:
            with open(path, "wb") as fh:
                fh.write(b"half a shard")  # a partial write, then the failure
            raise self.error() if self.error is KeyboardInterrupt else self.error
        self.real(tensors, path, metadata)


def assert_whole(folder) -> None:
    """Every shard the index lists is complete and readable; no temporary files are left listed."""
    if not (folder / "index.json").exists():
        return
    index = json.loads((folder / "index.json").read_text())
    for shard in index["shards"]:
        part = ShardedActivations(folder)._open(index["shards"].index(shard))
        assert len(part.get_slice("tokens")[:]) == shard["rows"][1] - shard["rows"][0]


def test_an_interrupted_run_resumes_to_the_same_files(tiny, tmp_path, monkeypatch):
    kw = {"hooks": "resid_post,attn_out", "shard_bytes": 15_000}
    whole = probes.capture(tiny, TEXTS, out=tmp_path / "whole", **kw)
    n = len(whole.shards)
    assert n >= 4
    writes = Writes(tmp_path / "cut", fail_at=3)
    monkeypatch.setattr(capture_format, "write_tensors", writes)
    with pytest.raises(KeyboardInterrupt):
        probes.capture(tiny, TEXTS, out=tmp_path / "cut", **kw)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [
        "index.json",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    part = probes.load_activations(tmp_path / "cut")
    assert not part.complete and len(part.shards) == 2 and "unfinished" in repr(part)
    assert all(part[i].tokens.tolist() == whole[i].tokens.tolist() for i in range(len(part)))

    writes = Writes(tmp_path / "cut")
    monkeypatch.setattr(capture_format, "write_tensors", writes)
    resumed = probes.capture(tiny, TEXTS, out=tmp_path / "cut", **kw)
    assert writes.calls == n - 2  # the finished shards were skipped, not recomputed
    assert resumed.complete and len(resumed) == len(TEXTS)
    for shard in whole.shards:
        assert (tmp_path / "cut" / shard["file"]).read_bytes() == (
            tmp_path / "whole" / shard["file"]
        ).read_bytes()
    assert json.loads((tmp_path / "cut" / "index.json").read_text()) == json.loads(
        (tmp_path / "whole" / "index.json").read_text()
    )

    writes = Writes(tmp_path / "cut")
    monkeypatch.setattr(capture_format, "write_tensors", writes)
    probes.capture(tiny, TEXTS, out=tmp_path / "cut", **kw)  # finished: nothing is written again
    assert writes.calls == 0


def test_a_full_disk_leaves_whole_shards_and_one_error_line(tiny_dir, tmp_path, monkeypatch):
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS) + "\n")
    monkeypatch.setattr(
        capture_format,
        "write_tensors",
        Writes(tmp_path / "s", fail_at=2, error=OSError(errno.ENOSPC, "No space left on device")),
    )
    r = run_cli(
        "capture", "-m", tiny_dir, "--dataset", f"FILE:{data}", "--out", tmp_path / "s", "--shard-size", "20K"
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert (
        len(lines) == 1
        and "no space left on device" in lines[0].lower()
        and "lists the 1 finished shards" in lines[0]
    )
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.json", "shard-00000.safetensors"]
    assert_whole(tmp_path / "s")
    monkeypatch.undo()
    r = run_cli(
        "capture",
        "-m",
        tiny_dir,
        "--dataset",
        f"FILE:{data}",
        "--out",
        tmp_path / "s",
        "--shard-size",
        "20K",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["texts"] == len(TEXTS)
    n = len(probes.load_activations(tmp_path / "s").shards)
    assert "resuming the capture in" in r.stderr and "1 shard already written" in r.stderr
    assert f"wrote {n - 1} shard{'s' * (n != 2)} (after the 1 already there)" in r.stderr
    r = run_cli(
        "capture", "-m", tiny_dir, "--dataset", f"FILE:{data}", "--out", tmp_path / "s", "--shard-size", "20K"
    )
    assert (
        r.exit_code == 0 and "was already complete; nothing written" in r.stderr and "wrote" not in r.stderr
    )


def test_other_settings_are_refused_and_force_starts_over(tiny, tmp_path):
    probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=20_000)
    with pytest.raises(ProbesError, match="hooks: resid_pre now, resid_post there"):
        probes.capture(tiny, TEXTS, hooks="resid_pre", out=tmp_path / "s", shard_bytes=20_000)
    with pytest.raises(ProbesError, match="store_dtype: float16 now, float32 there"):
        probes.capture(
            tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=20_000, store_dtype="float16"
        )
    with probes.skip(tiny, "1"), pytest.raises(ProbesError, match="skipped_blocks: 1 now, none there"):
        probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=20_000)
    acts = probes.capture(tiny, TEXTS[:2], hooks="resid_pre", out=tmp_path / "s", force=True)
    assert len(acts) == 2 and acts.names[0] == "blocks.0.hook_resid_pre"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.json", "shard-00000.safetensors"]


def test_a_changed_dataset_is_not_mixed_into_a_resumed_capture(tiny, tmp_path, monkeypatch):
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS) + "\n")
    monkeypatch.setattr(capture_format, "write_tensors", Writes(tmp_path / "s", fail_at=3))
    with pytest.raises(KeyboardInterrupt):
        probes.capture(
            tiny, Dataset(f"FILE:{data}"), hooks="resid_post", out=tmp_path / "s", shard_bytes=15_000
        )
    monkeypatch.undo()
    data.write_text("\n".join(["other words entirely", *TEXTS]) + "\n")
    with pytest.raises(ProbesError, match="dataset changed"):
        probes.capture(
            tiny, Dataset(f"FILE:{data}"), hooks="resid_post", out=tmp_path / "s", shard_bytes=15_000
        )


def test_skipped_blocks_record_as_the_one_prompt_capture_does(tiny, tmp_path):
    hooks = ("resid_mid", "attn_out", "resid_post", "z")
    with probes.skip(tiny, "1"):
        acts = probes.capture(tiny, TEXTS[:3], hooks=hooks, out=tmp_path / "s")
        one = [probes.capture(tiny, w, hooks=hooks) for w in window_ids(tiny, TEXTS[0])]
    assert acts.index["absent"] == ["blocks.1.attn.hook_z"] == one[0].absent
    assert acts.index["filled"] == {
        "blocks.1.hook_resid_mid": "copy of resid_pre",
        "blocks.1.hook_attn_out": "zeros",
    }
    for name in (
        "blocks.1.hook_resid_mid",
        "blocks.1.hook_attn_out",
        "blocks.2.hook_resid_post",
        "blocks.0.attn.hook_z",
    ):
        torch.testing.assert_close(acts[0][name], one[0][name], atol=2e-5, rtol=1e-5)
    assert not acts[0]["blocks.1.hook_attn_out"].any()


def test_progress_counts_every_text_once(tiny, tmp_path):
    seen = []

    class Counting(Progress):
        def task(self, label, total=None, unit="items"):
            seen.append((label, total, unit))
            outer = self

            class T(Task):
                def advance(self, n=1):
                    outer.done = getattr(outer, "done", 0) + n

            return T()

    counting = Counting()
    probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "s", shard_bytes=15_000, progress=counting)
    assert seen == [("capture", len(TEXTS), "texts")] and counting.done == len(TEXTS)


def test_api_refuses_what_does_not_apply(tiny, tmp_path):
    with pytest.raises(ProbesError, match="give out= a folder"):
        probes.capture(tiny, TEXTS)
    with pytest.raises(ProbesError, match="acts.save"):
        probes.capture(tiny, "one prompt", out=tmp_path / "s")
    with pytest.raises(ProbesError, match="one prompt"):
        probes.capture(tiny, TEXTS, out=tmp_path / "s", generate=3)
    with pytest.raises(ProbesError, match="key axis"):
        probes.capture(tiny, TEXTS, hooks="pattern", out=tmp_path / "s")
    with pytest.raises(ProbesError, match="float16, bfloat16"):
        probes.capture(tiny, TEXTS, out=tmp_path / "s", store_dtype="float8")
    with pytest.raises(ProbesError, match="holds no texts"):
        probes.capture(tiny, [], out=tmp_path / "s")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ProbesError, match="holds files but no index.json"):
        probes.capture(tiny, TEXTS, out=tmp_path / "mine")
    assert not (tmp_path / "s").exists() and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"text": "one"}\n\n{"txt": "two"}\n', ["texts.jsonl:3", "no 'text' field"]),
        ('{"text": "one"}\n{"text": ""}\n', ["texts.jsonl:2", "non-empty"]),
        ("\n\n", ["texts.jsonl", "holds no texts"]),
        (b"\xff\xfe broken\n", ["texts.jsonl", "not UTF-8"]),
        (None, ["cannot read dataset", "texts.jsonl"]),
    ],
)
def test_bad_datasets_fail_with_one_line_naming_the_file_and_line_before_loading(tmp_path, content, words):
    data = tmp_path / "texts.jsonl"
    if isinstance(content, bytes):
        data.write_bytes(content)
    elif content is not None:
        data.write_text(content)
    r = run_cli("capture", "-m", tmp_path / "no-model-needed", "--dataset", data, "--out", tmp_path / "s")
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert not (tmp_path / "s").exists()


def test_cli_resumes_and_refuses_a_folder_of_another_capture_before_loading(tiny_dir, tmp_path):
    data = tmp_path / "texts.txt"
    data.write_text("\n\n".join(TEXTS) + "\n")
    args = [
        "capture",
        "-m",
        tiny_dir,
        "--dataset",
        data,
        "--split",
        "paragraphs",
        "--out",
        tmp_path / "s",
        "--store-dtype",
        "bfloat16",
    ]
    r = run_cli(*args, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (
        d["texts"] == len(TEXTS)
        and d["dtype"] == "bfloat16"
        and d["tensors"]["blocks.0.hook_resid_pre"] == [d["rows"], 64]
    )
    acts = probes.load_activations(tmp_path / "s")
    assert acts.texts[1] == f"{data}:3"
    r = run_cli(*args[:-2], "--hooks", "resid_post", "-m", tmp_path / "no-such-model")
    assert r.exit_code == 2 and "hooks: resid_post now" in r.stderr  # the folder is checked before the model
    r = run_cli(
        "capture", "-m", tmp_path / "no-such-model", "--dataset", data, "--out", tmp_path / "x.safetensors"
    )
    assert r.exit_code == 2 and "a folder of shards" in r.stderr and not (tmp_path / "x.safetensors").exists()


def test_sigterm_mid_capture_leaves_whole_shards_and_the_rerun_finishes(tiny_dir, tmp_path):
    import subprocess
    import sys
    import time

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS * 40) + "\n")  # 200 texts, about 90 shards of 20K
    out = tmp_path / "s"
    args = [
        sys.executable,
        "-c",
        "from probes.cli.app import entry; entry()",
        "capture",
        "-m",
        str(tiny_dir),
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--shard-size",
        "20K",
        "--json",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "shard-00002.safetensors").exists():
        time.sleep(0.02)
    proc.send_signal(subprocess.signal.SIGTERM)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    assert code == 130, err
    assert "rerun the same command to resume" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    part = probes.load_activations(out)
    assert not part.complete and 2 <= len(part.shards) < 90
    assert_whole(out)
    r = run_cli(*args[3:])  # the same command, in-process
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["texts"] == 200


def test_a_hook_with_a_key_axis_is_refused_before_loading(tmp_path):
    data = tmp_path / "texts.txt"
    data.write_text("one\ntwo\n")
    for hooks in ("resid_post,pattern", "blocks.1.attn.hook_attn_scores"):
        r = run_cli(
            "capture",
            "-m",
            tmp_path / "no-model-needed",
            "--dataset",
            data,
            "--hooks",
            hooks,
            "--out",
            tmp_path / "s",
        )
        assert r.exit_code == 2 and "key axis" in r.stderr and "cannot" not in r.stderr, (
            r.stderr
        )  # not the missing model


def _readme() -> str:
    from pathlib import Path

    return (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_capture_call_form_the_readme_shows_works(tiny, tmp_path, monkeypatch):
    import inspect
    import re

    from probes.core.sampling import SamplingConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.txt").write_text("HAMLET: To be, or not to be\nROMEO: But soft\n", encoding="utf-8")
    readme = _readme()
    # The Python API block's capture lines, run as they are written, on the tiny model.
    lines = readme.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("acts = probes.capture("))
    last = next(i for i, ln in enumerate(lines) if ln.startswith("states.stack("))
    scope = {"probes": probes, "model": tiny}
    exec("\n".join(lines[first : last + 1]), scope)
    assert scope["resid"].shape[0] == 4 and len(scope["states"]) == 2
    assert scope["states"].dtype == "float16"
    assert scope["where"]["text"].tolist() == [0] * len(scope["states"][0].tokens) + [1] * len(
        scope["states"][1].tokens
    )
    # The table's signatures: every keyword it names is one the function takes.
    for name in ("capture", "capture_dataset"):
        row = next(ln for ln in lines if ln.startswith(f"| `{name}(model, "))
        shown = re.findall(r"\*, ([^)]*)\)", row)[0]
        taken = set(inspect.signature(getattr(probes, name)).parameters) | set(
            SamplingConfig.__dataclass_fields__ if name == "capture" else ()
        )
        for keyword in (k.split("=")[0].strip() for k in shown.split(",")):
            assert keyword.strip("*") in taken or keyword == "**overrides", (name, keyword)
    # ... and each call form: data as FILE:path, a path, a list, a Dataset; one prompt from FILE:path.
    done = [
        probes.capture_dataset(tiny, "FILE:texts.txt", out="a"),
        probes.capture_dataset(tiny, str(tmp_path / "texts.txt"), out=tmp_path / "b", max_texts=1),
        probes.capture_dataset(tiny, ["To be", "or not"], out="c", hooks="resid_post", layers="odd"),
        probes.capture_dataset(
            tiny, Dataset("FILE:texts.txt"), out="d", bos=False, store_dtype="bfloat16", shard_bytes="2K"
        ),
        probes.capture(tiny, ["To be", "or not"], out="e", shard_bytes=4096, force=True),
    ]
    assert [len(s) for s in done] == [2, 1, 2, 2, 2]
    assert (
        done[0][1].stack("resid_pre").shape
        == probes.capture(tiny, "ROMEO: But soft").stack("resid_pre").shape
    )
    one = probes.capture(tiny, "FILE:texts.txt", layers="0-1", bos=False, generate=2, seed=3)
    assert one.prompt.startswith("HAMLET") and one.stack("resid_pre").shape[0] == 2


def test_a_dataset_that_shrank_after_a_complete_capture_is_refused(tiny, tmp_path):
    """#28 item 5: the first texts' shards still match, but the capture lists texts the dataset lacks now."""
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS) + "\n")
    kwargs = dict(hooks="resid_post", out=tmp_path / "s", shard_bytes=15_000)
    full = probes.capture(tiny, Dataset(f"FILE:{data}"), **kwargs)
    assert len(full.shards) > 2
    index = (tmp_path / "s" / "index.json").read_bytes()
    data.write_text("\n".join(TEXTS[:2]) + "\n")
    with pytest.raises(ProbesError, match="dataset changed"):
        probes.capture(tiny, Dataset(f"FILE:{data}"), **kwargs)
    assert (tmp_path / "s" / "index.json").read_bytes() == index  # nothing rewritten
    again = probes.capture(tiny, Dataset(f"FILE:{data}"), force=True, **kwargs)
    assert again.index["complete"] and len(again.index["texts"]) == 2


def test_shuffled_rows_are_every_row_once_in_a_seeded_order_that_mixes_texts(tiny, tmp_path):
    acts = probes.capture(
        tiny, TEXTS * 4, out=tmp_path / "s", hooks="resid_post", layers="1", shard_bytes=6000
    )
    assert len(acts.shards) >= 4
    name = "blocks.1.hook_resid_post"
    ordered = next(acts.rows(name, batch_size=10**6))

    def shuffled(seed, buffer=None):
        return list(acts.rows(name, batch_size=16, shuffle=True, seed=seed, buffer=buffer))

    a, b, c = shuffled(3), shuffled(3), shuffled(4)
    assert all(len(x["text"]) == 16 for x in a[:-1])
    for key in (name, "text", "position", "tokens"):
        assert torch.equal(torch.cat([x[key] for x in a]), torch.cat([x[key] for x in b]))  # the seed decides
    flat = {k: torch.cat([x[k] for x in a]) for k in (name, "text", "position")}
    assert not torch.equal(flat["text"], torch.cat([x["text"] for x in c]))
    # every row exactly once: the same rows as in order, each row's fingerprint sorted
    probe = torch.randn(flat[name].shape[1], generator=torch.Generator().manual_seed(0))
    assert len(flat[name]) == acts.n_rows
    assert torch.equal((flat[name] @ probe).sort().values, (ordered[name] @ probe).sort().values)
    assert torch.equal(flat["text"].sort().values, ordered["text"].sort().values)
    assert len(set(a[0]["text"].tolist())) > 3  # one batch mixes many texts
    assert len(shuffled(3, buffer=16)) == len(a)  # a small pool still yields every row
    with pytest.raises(ProbesError, match="buffer must be"):
        acts.rows(name, batch_size=16, shuffle=True, buffer=8)
