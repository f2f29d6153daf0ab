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
