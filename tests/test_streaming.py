"""A streamed Hugging Face dataset (`--streaming`): texts read as they arrive, the same numbers as the texts
read whole. The Hub is out of reach here, so `datasets.load_dataset` streams a local JSON Lines file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_runner import run_cli

import probes
from probes.core.dataset import Dataset
from probes.errors import ProbesError

datasets = pytest.importorskip("datasets", reason="streaming reads through the datasets package")

TEXTS = [
    "ROMEO: But soft, what light through yonder window breaks",
    "JULIET: O Romeo, Romeo! wherefore art thou Romeo? " * 6,
    "To be",
    "Now is the winter of our discontent",
]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """HF:NAME streams a local file; the calls made are recorded."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)))
    real, calls = datasets.load_dataset, []

    def load_dataset(name, split=None, streaming=False, **kw):
        calls.append((name, split, streaming))
        return real("json", data_files=str(path), split="train", streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_a_streamed_dataset_gives_what_the_whole_dataset_gives(tiny, hub, tmp_path):
    data = Dataset("HF:someone/corpus", streaming=True)
    assert data.check() is None  # opened and its first text read; its length is unknown
    assert hub[-1] == ("someone/corpus", "train", True)
    assert isinstance(data.source, str)
    with pytest.raises(TypeError, match="streamed"):
        len(data)
    assert [t.text for t in data] == TEXTS
    streamed = probes.lens_over(tiny, data, n_boot=20)
    whole = probes.lens_over(tiny, TEXTS, n_boot=20)
    assert np.allclose(streamed.mean, whole.mean) and streamed.texts == [
        f"HF:someone/corpus: row {i}" for i in range(4)
    ]
    acts = probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts")
    ref = probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "ref")
    assert acts.complete and len(acts) == len(TEXTS)
    for i in range(len(TEXTS)):
        assert torch.equal(acts[i].stack("resid_post"), ref[i].stack("resid_post"))


def test_the_streaming_flag_reads_the_hub_only(tiny_dir, hub, tmp_path):
    r = run_cli("lens", "-m", tiny_dir, "--dataset", "HF:someone/corpus", "--streaming", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dataset"]["texts"] == len(TEXTS)
    texts = tmp_path / "t.txt"
    texts.write_text("a b c\n")
    for args in (
        ["lens", "--dataset", texts, "--streaming"],
        ["capture", "--dataset", texts, "--streaming", "--out", tmp_path / "o"],
        ["prune", "--dataset", texts, "--streaming"],
    ):
        r = run_cli(*args, "-m", tiny_dir)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "HF:name" in r.stderr, r.stderr
    r = run_cli(
        "capture", "-m", tiny_dir, "--prompt", "x", "--streaming", "--out", tmp_path / "x.safetensors"
    )
    assert r.exit_code == 2 and "--streaming" in r.stderr
    with pytest.raises(ProbesError, match="HF:name"):
        Dataset(["a"], streaming=True)


SOURCES = [TEXTS[:2], TEXTS[2:3], TEXTS[3:]]  # three data sources; text 1 needs two windows


@pytest.fixture
def sources(tmp_path):
    """HF:NAME streams three local files, one data source each; the sources each process opens are logged."""
    from stand_in_hub import install, stand_in

    hub = stand_in(tmp_path / "hub", SOURCES)
    real = datasets.load_dataset
    install(hub["settings"])
    yield hub
    datasets.load_dataset = real


def test_each_rank_reads_its_own_data_sources_and_the_texts_keep_their_one_process_places(sources):
    from stand_in_hub import opened

    from probes.core.shares import Share

    data = Dataset("HF:someone/corpus", streaming=True)
    read = {}
    for rank in (0, 1):
        sources["log"].unlink(missing_ok=True)
        share = Share(data, rank, 2)
        read[rank] = [t.text for t in share.texts()]
        assert share.strategy == "shards" and share.keys == [
            (s, j) for s in range(rank, 3, 2) for j in range(len(SOURCES[s]))
        ]
        assert opened(sources["log"]) == {"-": [f"source-{s}.jsonl" for s in range(rank, 3, 2)]}
    assert read == {0: SOURCES[0] + SOURCES[2], 1: SOURCES[1]}
    # fewer sources than ranks, or max_texts (a count in one-process order): rank r keeps texts r, r+N, ...
    for share in (Share(data, 1, 4), Share(Dataset("HF:someone/corpus", streaming=True, max_texts=3), 1, 2)):
        kept = [(t.text, k) for t, (_, k) in zip(share.texts(), share.keys)]
        assert share.strategy == "examples" and kept == [
            (TEXTS[k], k) for k in range(1, 3 if share.ranks == 2 else 4, share.ranks)
        ]


def test_a_streamed_capture_is_planned_per_data_source_and_reads_as_the_texts_do(tiny, sources, tmp_path):
    data = Dataset("HF:someone/corpus", streaming=True)
    acts = probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts", shard_bytes="12K")
    ref = probes.capture(tiny, TEXTS, hooks="resid_post", out=tmp_path / "ref", shard_bytes="12K")
    names = sorted(p.name for p in (tmp_path / "acts").glob("shard-*"))
    assert names[0] == "shard-00000-00000.safetensors" and names[-1].startswith("shard-00002-")
    assert acts.complete and acts.texts == [f"HF:someone/corpus: row {i}" for i in range(len(TEXTS))]
    for i in range(len(TEXTS)):  # shards, so batches, differ from the list's: float rounding may
        torch.testing.assert_close(acts[i].stack("resid_post"), ref[i].stack("resid_post"))
    for a, b in zip(acts.rows(batch_size=7), ref.rows(batch_size=7)):
        assert all(torch.equal(a[k], b[k]) for k in ("tokens", "text", "position"))  # text: stream numbers
        torch.testing.assert_close(a, b)
    assert sorted(next(acts.rows(batch_size=10**6, shuffle=True))["text"].tolist()) == sorted(
        next(ref.rows(batch_size=10**6))["text"].tolist()
    )
    first = Dataset("HF:someone/corpus", streaming=True, max_texts=len(SOURCES[0]))  # source 0 exactly
    head = probes.capture(tiny, first, hooks="resid_post", out=tmp_path / "head", shard_bytes="12K")
    assert head.complete and head.texts == acts.texts[:2] and head.index["sources"][2]["done"]
    torch.testing.assert_close(head[1].stack("resid_post"), acts[1].stack("resid_post"))
    again = probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts", shard_bytes="12K")
    assert again.written == {"kept": len(names), "new": 0, "was_complete": True}
    # another number of data sources is another stream: refused in one line, nothing removed
    from stand_in_hub import install, stand_in

    install(stand_in(tmp_path / "other", [TEXTS[:2], TEXTS[2:]])["settings"])
    with pytest.raises(ProbesError, match=r"data_sources: 2 now, 3 there") as e:
        probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts", shard_bytes="12K")
    assert "\n" not in str(e.value) and sorted(p.name for p in (tmp_path / "acts").glob("shard-*")) == names
    from probes.studies.capture.shards import check_capture_dir

    with pytest.raises(ProbesError, match="holds a capture of a streamed dataset"):  # laid out per source
        check_capture_dir(tmp_path / "acts", {}, streamed=False)
    with pytest.raises(ProbesError, match="holds a capture of a dataset read whole"):
        check_capture_dir(tmp_path / "ref", {}, streamed=True)


def test_a_damaged_record_of_a_stream_is_one_line(tiny, sources, tmp_path):
    data = Dataset("HF:someone/corpus", streaming=True)
    probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts", shard_bytes="12K")
    index = json.loads((tmp_path / "acts" / "index.json").read_text())
    for damage in (
        lambda i: i["sources"][1].update(texts=[{"windows": "2"}]),
        lambda i: i["sources"][1]["shards"][0].update(file="shard-00002-00000.safetensors"),
        lambda i: i["sources"][1]["shards"][0].update(file="shard-00001.safetensors"),
        lambda i: i.update(sources={"0": None}),
    ):
        broken = json.loads(json.dumps(index))
        damage(broken)
        (tmp_path / "acts" / "index.json").write_text(json.dumps(broken))
        with pytest.raises(ProbesError, match="a damaged capture index") as e:
            probes.capture(tiny, data, hooks="resid_post", out=tmp_path / "acts", shard_bytes="12K")
        assert "\n" not in str(e.value)
