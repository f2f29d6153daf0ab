"""`to_dataframe()` on every result with rows: the rows equal the result's own numbers, and without pandas
the error names the extra to install."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import probes
from probes.errors import ProbesError

pd = pytest.importorskip("pandas")
PROMPT = "JULIET: Good night, good night! Parting is such sweet sorrow"


def test_lens_rows_are_layer_by_position(tiny):
    lens = probes.logit_lens(tiny, PROMPT, compare_skip="1", positions=[2, -1])
    df = lens.to_dataframe()
    n = lens.n_rows * len(lens.positions)
    assert len(df) == 2 * n and list(df["run"].unique()) == ["full model", "blocks 1 skipped"]
    full = df[df["run"] == "full model"].set_index(["row", "position"])
    d = lens.as_dict()
    last = lens.positions[-1]
    for r, label in enumerate(lens.row_labels):
        row = full.loc[(label, last)]
        assert row["top_tokens"] == d["top_str_tokens"][r][-1]
        assert row["top1_prob"] == pytest.approx(d["top_probs"][r][-1][0], abs=1e-6)
        assert row["kl_to_final"] == pytest.approx(d["kl_to_final"][r][-1], abs=1e-6)
        assert row["entropy"] == pytest.approx(d["entropy"][r][-1], abs=1e-6)
        assert row["final_rank"] == d["final_token_rank"][r][-1]
        assert row["next_rank"] is None or np.isnan(row["next_rank"])  # the last position: unknown
    assert full.loc[(lens.row_labels[0], 2), "next_rank"] == d["next_token_rank"][0][0]


def test_generation_and_dataset_lens(tiny):
    gen = probes.generation_lens(tiny, "ROMEO:", max_new_tokens=5, seed=1)
    df = gen.to_dataframe()
    assert len(df) == gen.lens.n_rows * 5 and sorted(df["step"].unique()) == list(range(5))
    assert list(df[df["row"] == gen.lens.row_labels[-1]]["generated"]) == gen.generated_strings
    emerged = df[df["emerges"]].sort_values("step")
    assert list(emerged["step"]) == [j for j, e in enumerate(gen.emergence) if e is not None]
    over = probes.lens_over(tiny, [PROMPT, "To be, or not to be"], n_boot=20)
    df = over.to_dataframe()
    assert len(df) == over.n_rows * len(over.metrics)
    kl = df[df["metric"] == "kl_to_final"]
    assert list(kl["mean"]) == pytest.approx(list(over.metric("kl_to_final")[0]))
    assert list(kl["high"]) == pytest.approx(list(over.metric("kl_to_final")[2]))


def test_samples_grid_and_next_token(tiny):
    samples = probes.generate(tiny, "ROMEO:", max_new_tokens=4, num_samples=2, seed=3)
    df = samples.to_dataframe()
    assert list(df["text"]) == [s.text for s in samples] and list(df["sample"]) == [0, 1]
    many = probes.generate(tiny, ["ROMEO:", "JULIET:"], max_new_tokens=3, num_samples=2)
    df = many.to_dataframe()
    assert len(df) == 4 and list(df["where"]) == ["#0", "#0", "#1", "#1"]
    grid = probes.generate_grid(tiny, "ROMEO:", temperature=[0.5, 1.0], max_new_tokens=3, num_samples=2)
    df = grid.to_dataframe()
    assert len(df) == 4 and list(df["temperature"]) == [0.5, 0.5, 1.0, 1.0]
    dist = probes.next_token_distribution(tiny, "ROMEO:", temperature=[0.5, 2.0], top=4)
    df = dist.to_dataframe()
    raw = df[df["setting"] == "raw"]
    assert list(raw["token"]) == dist.raw.top_str_tokens and list(raw["prob"]) == dist.raw.top_probs
    assert list(raw["rank"]) == list(range(1, len(raw) + 1)) and len(df["setting"].unique()) == 3


def test_prune_sweep_and_embeddings(tiny):
    comp = probes.compare_pruned(tiny, "ROMEO:", ["odd"], max_new_tokens=5, evaluate=False)
    df = comp.to_dataframe()
    assert list(df["run"]) == ["full", "odd"] and df.loc[1, "tf_kl"] == comp.runs[1].metrics["tf_kl"]
    assert df.loc[1, "skipped_blocks"] == comp.runs[1].skipped_blocks
    sweep = probes.sweep_blocks(tiny, eval_text=probes.Dataset([PROMPT, "To be, or not to be"]))
    df = sweep.to_dataframe()
    assert list(df["block"]) == list(range(tiny.cfg.n_layers))
    assert list(df["loss_increase"]) == [b["loss_increase"] for b in sweep.blocks]
    emb = probes.embeddings(tiny, words=["thou", "thee", "king"], top=2)
    df = emb.to_dataframe()
    assert list(df["word"]) == [w.word for w in emb.words]
    assert list(df["norm"]) == [s.norm for s in emb.checkpoint.words]
    assert all(len(n) == 2 for n in df["neighbours"])


def test_without_pandas_the_error_names_the_extra(tiny, monkeypatch):
    lens = probes.logit_lens(tiny, "ROMEO:")
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    with pytest.raises(ProbesError, match=r"needs pandas.*pip install 'probes\[pandas\]'"):
        lens.to_dataframe()
