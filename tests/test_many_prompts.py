"""Every study of a prompt also takes a list of prompts or a Dataset: one result per prompt, in order,
equal to running the study on each prompt alone."""

from __future__ import annotations

import numpy as np
import pytest

import probes
from probes.core.dataset import Dataset
from probes.errors import ProbesError

PROMPTS = ["To be, or not to be", "Hi there", "The quick brown fox jumps"]


def _same_lens(a, b):
    assert a.prompt == b.prompt and a.tokens == b.tokens and a.positions == b.positions
    np.testing.assert_allclose(a.top_probs, b.top_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.top_ids, b.top_ids)
    np.testing.assert_allclose(a.kl_to_final, b.kl_to_final, rtol=1e-4, atol=1e-5)


def test_logit_lens_of_a_list_is_each_prompts_lens_in_order(tiny):
    many = probes.logit_lens(tiny, PROMPTS, top=3)
    assert [r.prompt for r in many] == PROMPTS
    for prompt, result in zip(PROMPTS, many):
        _same_lens(result, probes.logit_lens(tiny, prompt, top=3))
    one = probes.logit_lens(tiny, PROMPTS[0])
    assert isinstance(one, probes.LensResult)  # one prompt: one result, as before


def test_a_datasets_texts_are_text_never_file_specs(tiny, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("FILE:/no/such/file\nHi there\n", encoding="utf-8")
    many = probes.logit_lens(tiny, Dataset(texts))
    assert [r.prompt for r in many] == ["FILE:/no/such/file", "Hi there"]
    _same_lens(many[1], probes.logit_lens(tiny, "Hi there"))
    with pytest.raises(ProbesError, match="cannot read prompt file"):
        probes.logit_lens(tiny, "FILE:/no/such/file")  # a prompt given as such is still read from the file


def test_next_token_and_generation_lens_of_a_list(tiny):
    dists = probes.next_token_distribution(tiny, PROMPTS, temperature=[0.5, 2.0], top=4)
    for prompt, d in zip(PROMPTS, dists):
        alone = probes.next_token_distribution(tiny, prompt, temperature=[0.5, 2.0], top=4)
        assert d.prompt == prompt and d.as_dict() == alone.as_dict()
    gens = probes.generation_lens(tiny, PROMPTS[:2], max_new_tokens=5, greedy=True)
    for prompt, g in zip(PROMPTS[:2], gens):
        alone = probes.generation_lens(tiny, prompt, max_new_tokens=5, greedy=True)
        assert g.generated_strings == alone.generated_strings and g.prompt == prompt


def test_compare_pruned_of_a_list_scores_held_out_text_once(tiny, monkeypatch):
    import probes.studies.prune.heldout as heldout

    passes = []
    real = heldout.batches
    monkeypatch.setattr(heldout, "batches", lambda *a, **k: passes.append(1) or real(*a, **k))
    many = probes.compare_pruned(tiny, PROMPTS[:2], ["odd"], max_new_tokens=6, eval_text=Dataset(PROMPTS))
    assert len(passes) == 1  # the second prompt's comparison reuses the first's held-out scores
    assert [c.prompt for c in many] == PROMPTS[:2]
    for prompt, comp in zip(PROMPTS[:2], many):
        alone = probes.compare_pruned(tiny, prompt, ["odd"], max_new_tokens=6, eval_text=Dataset(PROMPTS))
        for a, b in zip(comp.runs, alone.runs):
            assert a.samples[0].tokens == b.samples[0].tokens
            assert a.metrics.keys() == b.metrics.keys()
            for key, value in a.metrics.items():
                other = b.metrics[key]
                assert (
                    value == other
                    if value is None or other is None
                    else value == pytest.approx(other, rel=1e-5, nan_ok=True)
                )


def test_a_bad_prompt_in_the_list_fails_before_any_study_runs(tiny, monkeypatch):
    import probes.studies.lens.logit as lens

    ran = []
    real = lens.build_result
    monkeypatch.setattr(lens, "build_result", lambda *a, **k: ran.append(1) or real(*a, **k))
    with pytest.raises(ProbesError, match="cannot read prompt file"):
        probes.logit_lens(tiny, ["Hi there", "FILE:/no/such/file"])
    assert ran == []


def test_an_empty_list_says_no_prompts_were_given(tiny):
    for study in (
        probes.logit_lens,
        probes.next_token_distribution,
        lambda m, p: probes.generate(m, p, max_new_tokens=2),
    ):
        with pytest.raises(ProbesError, match="an empty list: no prompts"):
            study(tiny, [])


def test_generation_of_many_prompts_is_a_result_with_where_each_came_from(tiny, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("ROMEO:\nJULIET:\n", encoding="utf-8")
    runs = probes.generate(tiny, probes.Dataset(f"FILE:{path}"), max_new_tokens=3, greedy=True)
    assert isinstance(runs, probes.Generations) and len(runs) == 2
    d = runs.as_dict()
    assert [p["where"] for p in d["prompts"]] == [f"{path}:1", f"{path}:2"]
    assert [p["prompt"] for p in d["prompts"]] == ["ROMEO:", "JULIET:"]
    assert d["prompts"][0]["samples"][0]["tokens"] == runs[0][0].tokens and d["timing"]["new_tokens"] == 6
    assert d["dataset"]["source"] == str(path) and d["dataset"]["texts"] == 2
    grid = probes.generate(
        tiny,
        ["Hi", "Ho"],
        [probes.SamplingConfig(greedy=True, max_new_tokens=2), probes.SamplingConfig(max_new_tokens=2)],
    )
    g = grid.as_dict()
    assert [p["where"] for p in g["prompts"]] == ["#0", "#1"] and len(g["prompts"][1]["grid"]) == 2
    assert g["prompts"][1]["grid"][0]["samples"][0]["tokens"] == grid[1][0][0].tokens


NOT_PROMPTS = [
    __import__("torch").tensor([3.0, 9.6]),
    __import__("torch").tensor([True, False, True]),
    np.array([4.5, 1.0]),
    [2.9, 11.0],
    (True, False),
    [5, 6.5],
    b"\x05\x06",
    bytearray(b"\x07"),
    4.0,
    {"ids": [1, 2]},
    [[0.5, 2.5], [1.5]],  # many prompts, each of floats
]


@pytest.mark.parametrize("prompt", NOT_PROMPTS, ids=lambda p: type(p).__name__)
def test_only_integers_are_token_ids(tiny, prompt):
    import torch

    accepted = "token ids \\(a list of ints, or an integer tensor\\)"
    for study in (
        probes.logit_lens,
        probes.next_token_distribution,
        lambda m, p: probes.generate(m, p, max_new_tokens=2),
        lambda m, p: probes.capture(m, p),
    ):
        with pytest.raises(ProbesError, match=accepted):
            study(tiny, prompt)
    ids = [probes.logit_lens(tiny, p).tokens for p in ([3, 9], (3, 9), np.array([3, 9]))]
    ids += [probes.logit_lens(tiny, p).tokens for p in ([np.int64(3), 9], torch.tensor([[3, 9]]))]
    assert ids == [[3, 9]] * 5
