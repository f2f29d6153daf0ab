"""Lens over a dataset: per-row means equal a manual loop over texts (transformers' hidden states,
float64), batching and chunking change nothing, one text equals `logit_lens`, skipped blocks and
the comparison with the unpruned model match a hand-written forward, the cluster bootstrap behaves,
and the CLI's output and its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from reference import manual_logits

import probes
from probes.core.prompt import bos_id
from probes.errors import ProbesError
from probes.studies.lens.bootstrap import cluster_bootstrap
from probes.studies.lens.dataset_result import METRICS

TEXTS = [
    "JULIET: Good night, good night! Parting is such sweet sorrow",
    "To be, or not to be",
    "O",
    # Longer than tiny's 64-token context: cut into windows.
    (
        "Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds "
        "that lour'd upon our house in the deep bosom of the ocean buried. Now are our brows bound with "
        "victorious wreaths; our bruised arms hung up for monuments; our stern alarums changed to merry "
        "meetings, our dreadful marches to delightful measures."
    ),
]


def manual_windows(model, text: str) -> list[list[int]]:
    """BOS + consecutive slices of the text's tokens, each at most n_ctx long, written out here."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    step = model.cfg.n_ctx - 1
    return [[bos_id(model)] + ids[i : i + step] for i in range(0, len(ids), step)]


def manual_sums(hf, ids: list[int]) -> tuple[np.ndarray, int, int]:
    """Per row, the sums of the five metrics over one window, from transformers' hidden states in float64."""
    with torch.no_grad():
        hs = hf(torch.tensor([ids], device=hf.device), output_hidden_states=True).hidden_states
        logits = [hf.lm_head(hf.transformer.ln_f(h[0])) for h in hs[:-1]] + [hf.lm_head(hs[-1][0])]
    logp = [x.double().log_softmax(-1) for x in logits]  # L+1 of (pos, vocab)
    final = logp[-1]
    nxt = torch.tensor(ids[1:], device=final.device)
    out = []
    for lp in logp:
        kl = (final.exp() * (final - lp)).sum(-1)
        entropy = -(lp.exp() * lp).sum(-1)
        xent = -lp[:-1].gather(-1, nxt[:, None])[:, 0]
        acc = (lp[:-1].argmax(-1) == nxt).double()
        agree = (lp.argmax(-1) == final.argmax(-1)).double()
        out.append(
            [float(kl.sum()), float(entropy.sum()), float(xent.sum()), float(acc.sum()), float(agree.sum())]
        )
    return np.array(out), len(ids), len(ids) - 1  # (rows, metrics), positions, predicted


def manual_means(model, hf, texts):
    total, n_pos, n_next = 0.0, 0, 0
    for text in texts:
        for w in manual_windows(model, text):
            sums, a, b = manual_sums(hf, w)
            total, n_pos, n_next = total + sums, n_pos + a, n_next + b
    per = np.array([n_next if m in ("next_xent", "next_accuracy") else n_pos for m in METRICS])
    return total / per, n_pos, n_next


def test_means_match_a_manual_loop_over_texts(tiny, tiny_hf):
    assert tiny.cfg.n_layers == 4 and tiny.cfg.n_ctx == 64
    lens = probes.lens_over(tiny, TEXTS)
    ref, n_pos, n_next = manual_means(tiny, tiny_hf, TEXTS)
    assert lens.n_texts == 4 and lens.n_windows == sum(len(manual_windows(tiny, t)) for t in TEXTS) > 4
    assert (lens.n_positions, lens.n_predicted) == (n_pos, n_next)
    assert lens.texts == ["text 0", "text 1", "text 2", "text 3"] and lens.source == "the text list"
    np.testing.assert_allclose(lens.mean[:, :3], ref[:, :3], atol=2e-4, rtol=1e-5)  # KL, entropy, xent (nats)
    # Accuracy and agreement are counts: exact unless a float32 near-tie flips one top-1.
    np.testing.assert_allclose(lens.mean[:, 3:], ref[:, 3:], atol=1.01 / n_next, rtol=0)
    assert lens.mean[0, 0] > 0.1 and lens.mean[-1, 0] == pytest.approx(0, abs=1e-6)  # the rows really differ
    assert np.all(lens.low <= lens.mean + 1e-12) and np.all(lens.mean <= lens.high + 1e-12)


def test_batching_and_chunking_do_not_change_results(tiny, monkeypatch):
    a = probes.lens_over(tiny, TEXTS)
    b = probes.lens_over(tiny, TEXTS, max_rows=1)
    from probes.core import stats

    monkeypatch.setattr(stats, "ELEMENTS", 3 * tiny.cfg.d_vocab)  # read 3 positions at a time
    c = probes.lens_over(tiny, TEXTS, max_tokens=80)
    for other in (b, c):
        np.testing.assert_allclose(other.mean, a.mean, atol=1e-5, rtol=0)
        np.testing.assert_allclose(other.text_sums, a.text_sums, atol=1e-4, rtol=0)
        np.testing.assert_allclose(other.low, a.low, atol=1e-4, rtol=0)
        np.testing.assert_allclose(other.high, a.high, atol=1e-4, rtol=0)
        assert (other.text_counts == a.text_counts).all()


@pytest.mark.parametrize("mid", [False, True])
def test_one_text_equals_the_prompt_lens_averaged_over_positions(tiny, mid):
    one = probes.lens_over(tiny, [TEXTS[0]], mid=mid)  # mid: each block's resid_mid too, 2L+1 rows
    lens = probes.logit_lens(tiny, TEXTS[0], mid=mid)
    assert len(one.rows) == (2 if mid else 1) * tiny.cfg.n_layers + 1
    if mid:
        from probes.studies.lens.tuned import TunedLens

        with pytest.raises(ProbesError, match="a tuned lens has no translators"):
            probes.lens_over(tiny, [TEXTS[0]], mid=True, lens=TunedLens.identity(tiny))
    known = lens.next_token >= 0
    expect = {
        "kl_to_final": lens.kl_to_final.mean(1),
        "entropy": lens.entropy.mean(1),
        "next_xent": lens.next_xent[:, known].mean(1),
        "next_accuracy": (lens.next_rank[:, known] == 1).mean(1),
        "final_agreement": (lens.top_ids[:, :, 0] == lens.final_token).mean(1),
    }
    for name, values in expect.items():
        np.testing.assert_allclose(one.metric(name)[0], values, atol=1e-5, rtol=0, err_msg=name)
    assert one.rows == lens.rows and one.row_labels == lens.row_labels
    # One text is one cluster: the bootstrap has nothing to resample.
    np.testing.assert_array_equal(one.low, one.mean)


def test_inside_skip_and_against_the_unpruned_model(tiny, tiny_hf):
    text = TEXTS[0]
    ids = manual_windows(tiny, text)[0]
    with probes.skip(tiny, [2]):
        pruned = probes.lens_over(tiny, [text])
    assert pruned.skipped_blocks == [2] and pruned.row_labels[3] == "2 (skipped)"
    np.testing.assert_array_equal(pruned.mean[3], pruned.mean[2])  # a skipped block repeats its input row
    with torch.no_grad():
        full = manual_logits(tiny_hf, ids).double().log_softmax(-1)  # (pos, vocab)
        cut = manual_logits(tiny_hf, ids, kept=[0, 1, 3]).double().log_softmax(-1)
    nxt = torch.tensor(ids[1:], device=full.device)[:, None]
    loss = float(-cut[:-1].gather(-1, nxt).mean())
    assert pruned.metric("next_xent")[0][-1] == pytest.approx(loss, abs=1e-4)

    with pytest.raises(ProbesError, match="names no block"):
        probes.lens_over(tiny, [text], compare_skip="none")
    both = probes.lens_over(tiny, [text], compare_skip=[2])
    np.testing.assert_allclose(
        both.mean, probes.lens_over(tiny, [text]).mean, atol=1e-6
    )  # the main run is unpruned
    cmp = both.compare
    assert cmp.skipped_blocks == [2] and cmp.reference == "unpruned final"
    kl = float((full.exp() * (full - cut)).sum(-1).mean())  # KL(unpruned output || pruned output)
    agree = float((full.argmax(-1) == cut.argmax(-1)).double().mean())
    assert cmp.metric("kl_to_final")[0][-1] == pytest.approx(kl, abs=1e-4) and kl > 1e-3
    assert cmp.metric("final_agreement")[0][-1] == pytest.approx(agree, abs=1e-9)
    assert cmp.metric("next_xent")[0][-1] == pytest.approx(loss, abs=1e-4)  # its own loss, as inside skip
    np.testing.assert_allclose(cmp.mean[:3], both.mean[:3], atol=1e-6)  # rows before block 2 are untouched


def test_interval_contains_the_mean_and_shrinks_with_more_texts(tiny):
    few = probes.lens_over(tiny, TEXTS[:3], seed=1)
    many = probes.lens_over(tiny, TEXTS[:3] * 12, seed=1)  # same per-text statistics, 12x the texts
    np.testing.assert_allclose(many.mean, few.mean, atol=1e-6)
    for lens in (few, many):
        assert np.all(lens.low <= lens.mean + 1e-12) and np.all(lens.mean <= lens.high + 1e-12)
    width = lambda lens: (lens.high - lens.low)[:-1, :3]  # rows that vary, metrics in nats
    ratio = width(many) / width(few)
    assert np.all(ratio < 0.6), ratio  # ~1/sqrt(12) = 0.29 expected
    again = probes.lens_over(tiny, TEXTS[:3] * 12, seed=1)
    np.testing.assert_array_equal(again.low, many.low)  # seeded


def test_cluster_bootstrap_against_a_plain_resampling_loop():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 40, size=(30, 1)).astype(float)
    sums = counts * rng.normal(3, 1, size=(30, 1)) + rng.normal(0, 5, size=(30, 1))
    mean, low, high = cluster_bootstrap(sums, counts, n_boot=4000, seed=3)
    loop = np.random.default_rng(7)
    reps = []
    for _ in range(4000):
        pick = loop.integers(0, 30, size=30)
        reps.append(sums[pick].sum() / counts[pick].sum())
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert mean[0] == pytest.approx(sums.sum() / counts.sum())
    assert low[0] == pytest.approx(lo, abs=0.06 * (hi - lo)) and high[0] == pytest.approx(
        hi, abs=0.06 * (hi - lo)
    )


def test_dataset_file_result_and_figure(tiny, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n\n".join(TEXTS[:2]) + "\n\n" + TEXTS[3].replace("; ", ";\n") + "\n")
    lens = probes.lens_over(tiny, f"FILE:{path}", split="paragraphs", max_texts=2)
    assert lens.n_texts == 2 and lens.texts == [f"{path}:1", f"{path}:3"]
    d = json.loads(json.dumps(lens.as_dict()))
    assert d["dataset"]["texts"] == 2 and set(d["metrics"]) == set(METRICS)
    assert len(d["metrics"]["entropy"]["low"]) == tiny.cfg.n_layers + 1
    assert "2 texts" in repr(lens) and len(repr(lens)) < 200
    fig = lens.figure()
    assert len([ax for ax in fig.axes if ax.lines]) == len(METRICS)
    caption = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert (
        "2 texts" in caption and "(only 2 texts: rough bands)" in caption and "hollow markers" not in caption
    )
    with probes.skip(tiny, "1"):
        pruned = probes.lens_over(tiny, TEXTS[:1]).figure()
    caption = "\n".join(t.get_text() for ax in pruned.axes for t in ax.texts)
    assert (
        "1 text," in caption and "hollow markers: skipped blocks" in caption
    )  # only when a block is skipped


def test_cli_dataset_json_and_plot(tiny_dir, tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in TEXTS) + "\n")
    plot = tmp_path / "layers.png"
    r = run_cli(
        "lens",
        "-m",
        tiny_dir,
        "--dataset",
        f"FILE:{path}",
        "--max-texts",
        "3",
        "--compare-skip",
        "1",
        "--plot",
        plot,
        "--json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["dataset"]["texts"] == 3 and d["dataset"]["where"][2] == f"{path}:3"
    assert d["compare"]["skipped_blocks"] == [1] and d["skipped_blocks"] == []
    assert plot.read_bytes()[:4] == b"\x89PNG"
    text = run_cli("lens", "-m", tiny_dir, "--dataset", path)
    assert text.exit_code == 0 and "4 texts" in text.stdout and "KL(final||row)" in text.stdout


@pytest.mark.parametrize(
    "content, words",
    [
        ("", ["holds no texts"]),
        ("\n\n  \n", ["holds no texts"]),
        ('{"text": "fine"}\n{"txt": "oops"}\n', ["data.jsonl:2", "'text'"]),
        ('{"text": "fine"}\nnot json\n', ["data.jsonl:2", "not valid JSON"]),
        (b'{"text": "ok"}\n\xff\xfe\n', ["data.jsonl:2: not UTF-8"]),
    ],
)
def test_cli_bad_dataset_fails_before_loading(content, words, tiny_dir, tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setattr(probes, "load", lambda *a, **k: pytest.fail("the model loaded"))
    r = run_cli("lens", "-m", tiny_dir, "--dataset", path)
    assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.stderr


def test_progress_counts_every_text_once(tiny):
    from probes.progress import Progress, Task

    seen = []

    class Count(Progress):
        def task(self, label, total=None, unit="items"):
            seen.append([label, total, unit, 0])

            class T(Task):
                def advance(self, n=1):
                    seen[-1][3] += n

            return T()

    probes.lens_over(tiny, TEXTS * 3, max_rows=2, progress=Count())
    assert seen == [["lens over texts", 12, "texts", 12]]


def test_cli_dataset_mid_rows(tiny_dir, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    r = run_cli("lens", "-m", tiny_dir, "--dataset", path, "--mid", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["row_labels"][:3] == ["embed", "0 attn", "0"] and len(d["rows"]) == 2 * 4 + 1
    r = run_cli("lens", "-m", tiny_dir, "--dataset", path, "--mid", "--tuned", "bundled")
    assert r.exit_code == 2 and "--mid" in r.stderr and r.stderr.count("\n") == 1
