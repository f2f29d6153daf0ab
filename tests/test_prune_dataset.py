"""Held-out scoring in batches: loss, KL and top-1 agreement of skip sets over a text or a dataset.

Every number is checked against a loop that runs transformers' own GPT-2 one window at a time, with
skipped blocks taken out of its block list, as the one-window-at-a-time scoring did before.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager

import pytest
import torch

import probes
from probes.core.dataset import Dataset
from probes.core.hooks import attached
from probes.studies.defaults import BUNDLED_EVAL, EVAL_MAX_TOKENS
from probes.studies.prune.compare import compare_pruned, sweep_blocks
from probes.studies.prune.heldout import HeldOut, heldout_source, score_runs
from tests.cli_runner import run_cli

TEXTS = [
    "VIOLA: What country, friends, is this?",
    "CAPTAIN: This is Illyria, lady. " * 12,  # longer than the tiny model's 64-token context: several windows
    "Orsino.",
    "SEBASTIAN: My stars shine darkly over me; the malignancy of my fate might perhaps distemper yours. " * 3,
]


@contextmanager
def hf_without(hf, layers):
    """transformers' GPT-2 with `layers` taken out of its block list: a skipped block is not computed."""
    blocks = hf.transformer.h
    hf.transformer.h = torch.nn.ModuleList([b for i, b in enumerate(blocks) if i not in set(layers)])
    try:
        yield hf
    finally:
        hf.transformer.h = blocks


def manual_windows(tok, texts, n_ctx, cap=None):
    """Each text's ids, BOS first, in windows of n_ctx that do not overlap (written out here on purpose)."""
    out = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"][:cap]
        step = n_ctx - 1
        out += [[tok.bos_token_id] + ids[i : i + step] for i in range(0, len(ids), step)]
    return out


def manual_scores(hf, windows, skip_sets):
    """[(loss, KL(full || run), top-1 agreement)] for the full model, then each skip set, one window at a
    time."""

    def lps():
        with torch.no_grad():
            return [
                torch.log_softmax(hf(torch.tensor([w], device=hf.device)).logits[0].float(), -1)
                for w in windows
            ]

    full = lps()
    out = []
    for layers in [[], *skip_sets]:
        with hf_without(hf, layers):
            run = lps()
        nll = torch.cat(
            [
                -lp[:-1].gather(-1, torch.tensor(w[1:], device=lp.device)[:, None])[:, 0]
                for lp, w in zip(run, windows)
            ]
        )
        kl = torch.cat([(a.exp() * (a - b)).sum(-1) for a, b in zip(full, run)])
        agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in zip(full, run)])
        out.append((float(nll.mean()), float(kl.mean()), float(agree.mean()), len(agree)))
    return out


def assert_close(score, full, expected):
    loss, kl, agree, positions = expected
    m = score.metrics(full)
    assert m["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
    assert m["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
    assert abs(m["top1_agreement"] - agree) <= 2 / positions  # a near-tie may flip one argmax
    assert score.positions == positions


SKIPS = [[1], [0, 2], [1, 3], [3]]


@pytest.fixture(params=["fused", "hooked"])
def path(request, monkeypatch):
    """Scoring runs on the fused weights when nothing but skips is attached, else through the bridge: test
    both."""
    if request.param == "hooked":
        monkeypatch.setenv("PROBES_FAST_PATH", "0")
    return request.param


def test_dataset_scores_equal_transformers_window_by_window(tiny, tiny_hf, tmp_path, path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    source = heldout_source(tiny, Dataset(path))
    windows = manual_windows(tiny.tokenizer, TEXTS, tiny.cfg.n_ctx)
    assert len(windows) > len(TEXTS)  # some texts are cut into several windows
    scores = score_runs(tiny, source, SKIPS)
    expected = manual_scores(tiny_hf, windows, SKIPS)
    assert scores[0].targets == sum(len(w) - 1 for w in windows)
    for s, e in zip(scores, expected):
        assert_close(s, scores[0], e)
    assert scores[0].metrics(scores[0])["kl"] == 0 and scores[0].metrics(scores[0])["top1_agreement"] == 1


def test_batch_size_does_not_change_the_scores(tiny, path):
    source = heldout_source(tiny, Dataset(TEXTS))
    one = score_runs(tiny, source, SKIPS, max_tokens=1, max_rows=1)  # one window per batch
    many = score_runs(tiny, source, SKIPS, max_tokens=1 << 20, max_rows=1000)  # every window in one batch
    mid = score_runs(tiny, source, SKIPS, max_tokens=150, max_rows=3)
    for a, b, c in zip(one, many, mid):
        for x in (b, c):
            assert x.targets == a.targets and x.positions == a.positions
            assert x.loss == pytest.approx(a.loss, rel=1e-5)
            assert x.kl == pytest.approx(a.kl, rel=1e-4, abs=1e-4)
            assert abs(x.agree - a.agree) <= 1


def test_compare_pruned_scores_the_eval_text_in_batches(tiny, tiny_hf):
    comp = compare_pruned(tiny, "ROMEO:", ["odd", "0,2"], max_new_tokens=4, eval_text=str(BUNDLED_EVAL))
    windows = manual_windows(tiny.tokenizer, [BUNDLED_EVAL.read_text()], tiny.cfg.n_ctx, cap=EVAL_MAX_TOKENS)
    expected = manual_scores(tiny_hf, windows, [[1, 3], [0, 2]])
    assert comp.eval_text == str(BUNDLED_EVAL) and comp.eval_tokens == sum(len(w) - 1 for w in windows)
    for run, (loss, kl, agree, n) in zip(comp.runs, expected):
        assert run.metrics["eval_loss"] == pytest.approx(loss, rel=1e-4)
        assert run.metrics["eval_kl"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
        assert abs(run.metrics["eval_top1_agreement"] - agree) <= 2 / n
        assert run.metrics["eval_loss_increase"] == pytest.approx(loss - expected[0][0], abs=1e-4)


def test_teacher_forced_metrics_equal_transformers(tiny, tiny_hf, path):
    # prune's KL and top-1 agreement along the full model's continuation, and each run's perplexity
    # under the full model: one batch on the fused path, one forward each through the bridge.
    comp = compare_pruned(tiny, "VIOLA: What country", ["odd", "0,3"], max_new_tokens=40, evaluate=False)
    prompt = comp.prompt_tokens
    full_ids = prompt + comp.runs[0].samples[0].tokens

    def lp(ids, layers=()):
        with hf_without(tiny_hf, layers), torch.no_grad():
            return torch.log_softmax(tiny_hf(torch.tensor([ids])).logits[0].float(), -1)

    a = lp(full_ids)[len(prompt) - 1 : -1]
    for run in comp.runs:
        b = lp(full_ids, run.skipped_blocks)[len(prompt) - 1 : -1]
        kl = (a.exp() * (a - b)).sum(-1)
        own = prompt + run.samples[0].tokens
        nll = -lp(own)[len(prompt) - 1 : -1].gather(-1, torch.tensor(own[len(prompt) :])[:, None])[:, 0]
        assert run.metrics["tf_kl"] == pytest.approx(float(kl.mean()), rel=1e-3, abs=1e-5), run.name
        assert abs(
            run.metrics["tf_top1_agreement"] - float((a.argmax(-1) == b.argmax(-1)).float().mean())
        ) <= 1 / len(kl)
        assert run.metrics["ppl_under_full"] == pytest.approx(math.exp(float(nll.mean())), rel=1e-3), run.name
        assert run.kl_per_token == pytest.approx([float(x) for x in kl], rel=1e-3, abs=1e-5)


def test_compare_pruned_takes_a_dataset_and_can_skip_scoring(tiny, tiny_hf):
    comp = compare_pruned(tiny, "ROMEO:", ["last-half"], max_new_tokens=3, eval_text=Dataset(TEXTS))
    expected = manual_scores(tiny_hf, manual_windows(tiny.tokenizer, TEXTS, tiny.cfg.n_ctx), [[2, 3]])
    assert [r.metrics["eval_loss"] for r in comp.runs] == pytest.approx([e[0] for e in expected], rel=1e-4)
    assert comp.eval_text == "the text list"
    off = compare_pruned(tiny, "ROMEO:", ["last-half"], max_new_tokens=3, evaluate=False)
    assert off.eval_text is None and off.eval_tokens is None
    assert all(
        r.metrics[k] is None for r in off.runs for k in ("eval_loss", "eval_kl", "eval_top1_agreement")
    )
    # Everything else is the same run.
    assert off.runs[1].samples[0].tokens == comp.runs[1].samples[0].tokens


def _influence_one_window_at_a_time(model, windows):
    """Block Influence and angular distance as the sweep used to compute them: per window, BOS excluded."""
    n = model.cfg.n_layers
    cos_sum, ang_sum, count, stash = [0.0] * n, [0.0] * n, 0, {}
    hooks = [
        (f"blocks.{i}.hook_resid_{w}", lambda t, hook: stash.__setitem__(hook.name, t[0, 1:].double()))
        for i in range(n)
        for w in ("pre", "post")
    ]
    with attached(model, hooks), torch.no_grad():
        for w in windows:
            model(torch.tensor([w]))
            for i in range(n):
                cos = torch.cosine_similarity(
                    stash[f"blocks.{i}.hook_resid_pre"], stash[f"blocks.{i}.hook_resid_post"], dim=-1
                )
                cos_sum[i] += float(cos.sum())
                ang_sum[i] += float((torch.arccos(cos.clamp(-1, 1)) / math.pi).sum())
            count += len(w) - 1
    return [1 - c / count for c in cos_sum], [a / count for a in ang_sum]


def test_sweep_equals_one_window_at_a_time(tiny, tiny_hf, path):
    sweep = sweep_blocks(tiny, eval_text=Dataset(TEXTS))
    windows = manual_windows(tiny.tokenizer, TEXTS, tiny.cfg.n_ctx)
    n = tiny.cfg.n_layers
    expected = manual_scores(tiny_hf, windows, [[i] for i in range(n)])
    assert sweep.base_loss == pytest.approx(expected[0][0], rel=1e-4)
    for b, (loss, kl, agree, positions) in zip(sweep.blocks, expected[1:]):
        assert b["loss"] == pytest.approx(loss, rel=1e-4)
        assert b["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
        assert abs(b["top1_agreement"] - agree) <= 2 / positions
    influence, angular = _influence_one_window_at_a_time(tiny, windows)
    assert [b["block_influence"] for b in sweep.blocks] == pytest.approx(influence, rel=1e-6)
    assert [b["angular_distance"] for b in sweep.blocks] == pytest.approx(angular, rel=1e-6)
    lowest = sorted(sorted(range(n), key=lambda i: influence[i])[: n // 2])
    strategies = {s["name"]: s for s in sweep.strategies}
    assert strategies[f"lowest-influence-{n // 2}"]["skipped_blocks"] == lowest
    named = {
        "odd": [1, 3],
        "even": [0, 2],
        "first-half": [0, 1],
        "last-half": [2, 3],
        f"lowest-influence-{n // 2}": lowest,
    }
    exp = manual_scores(tiny_hf, windows, list(named.values()))[1:]
    for (name, layers), (loss, kl, _, _) in zip(named.items(), exp):
        assert strategies[name]["skipped_blocks"] == layers
        assert strategies[name]["loss"] == pytest.approx(loss, rel=1e-4)
        assert strategies[name]["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
    assert sweep.eval_tokens == sum(len(w) - 1 for w in windows)


def test_scoring_holds_one_batch_not_the_dataset(tiny, monkeypatch, path):
    # Every log-prob tensor made during scoring is at most one batch: (rows, pos, vocab) with
    # rows * pos within the batch budget, whatever the number of windows.
    from probes.core.runner import Runner

    seen = []
    real = Runner.logprobs
    monkeypatch.setattr(Runner, "logprobs", lambda self, x: seen.append(x.shape[:2]) or real(self, x))
    source = HeldOut(Dataset(TEXTS * 20), "many")
    score_runs(tiny, source, [[1]], max_tokens=128)
    assert len(seen) > 10 and all(r * p <= max(128, tiny.cfg.n_ctx) for r, p in seen)


def test_scoring_inside_skip_adds_the_callers_skips_to_every_run(tiny, tiny_hf, path):
    source = heldout_source(tiny, Dataset(TEXTS))
    with probes.skip(tiny, [0]):
        scores = score_runs(tiny, source, [[1], [0, 3]])
    windows = manual_windows(tiny.tokenizer, TEXTS, tiny.cfg.n_ctx)
    expected = manual_scores(tiny_hf, windows, [[0], [0, 1], [0, 3]])[
        1:
    ]  # losses of the skip sets as a whole
    assert [s.loss for s in scores] == pytest.approx([e[0] for e in expected], rel=1e-4)


def test_prune_cli_takes_a_dataset(tiny_dir, tiny, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    r = run_cli(
        "prune",
        "--model",
        tiny_dir,
        "--skip",
        "odd",
        "--max-new-tokens",
        "3",
        "--dataset",
        f"FILE:{path}",
        "--max-texts",
        "2",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    expected = compare_pruned(
        tiny, "One ring to rule them all,", ["odd"], max_new_tokens=3, eval_text=Dataset(path, max_texts=2)
    )
    assert d["eval_text"] == str(path) and d["eval_texts"] == 2 and d["eval_tokens"] == expected.eval_tokens
    r = run_cli(
        "prune",
        "--model",
        tiny_dir,
        "--skip",
        "odd",
        "--max-new-tokens",
        "3",
        "--dataset",
        f"FILE:{path}",
        "--max-texts",
        "2",
    )
    assert (
        f"({d['eval_tokens']} tokens scored" not in r.stdout
        and f"(2 texts, {d['eval_tokens']} tokens scored)" in r.stdout
    )
    assert "held-out KL (nats)" in r.stdout
    assert [run["metrics"]["eval_loss"] for run in d["runs"]] == pytest.approx(
        [r.metrics["eval_loss"] for r in expected.runs]
    )
    # Speed from one cold run is in JSON only, said to be one run.
    assert all(
        run["timing"]["runs"] == 1 and "not a speed measurement" in run["timing"]["note"] for run in d["runs"]
    )
    assert "tokens_per_second" not in d["runs"][0]["metrics"]


def test_prune_sweep_cli_takes_a_dataset(tiny_dir, tiny, tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    r = run_cli("prune", "--model", tiny_dir, "--sweep", "--dataset", path, "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["base_loss"] == pytest.approx(sweep_blocks(tiny, eval_text=Dataset(path)).base_loss)
    assert d["eval_texts"] == len(TEXTS)


def test_prune_text_output_has_no_speed_row(tiny_dir):
    r = run_cli("prune", "--model", tiny_dir, "--max-new-tokens", "3", "--no-eval")
    assert r.exit_code == 0, r.stderr
    assert "tokens / s" not in r.stdout and "tokens/s" not in r.stdout
    assert "held-out scoring: off (--no-eval)" in r.stdout


def test_a_memo_reuses_the_sweeps_runs_for_the_comparison(tiny, monkeypatch):
    import probes.studies.prune.heldout as h

    source = heldout_source(tiny, Dataset(TEXTS))
    memo: dict = {}
    sweep = sweep_blocks(tiny, eval_text=source, memo=memo)
    batches_run = []
    real = h.batches
    monkeypatch.setattr(h, "batches", lambda *a, **k: batches_run.append(1) or real(*a, **k))
    reused = compare_pruned(
        tiny, "ROMEO:", ["odd", "last-half"], max_new_tokens=3, eval_text=source, memo=memo
    )
    assert batches_run == []  # every run was in the memo
    fresh = compare_pruned(tiny, "ROMEO:", ["odd", "last-half"], max_new_tokens=3, eval_text=source)
    assert batches_run  # without it the text is scored again
    for a, b in zip(reused.runs, fresh.runs):
        assert a.metrics["eval_loss"] == pytest.approx(b.metrics["eval_loss"], rel=1e-6)
        assert a.metrics["eval_kl"] == pytest.approx(b.metrics["eval_kl"], rel=1e-5, abs=1e-7)
    strategies = {s["name"]: s for s in sweep.strategies}
    assert reused.runs[1].metrics["eval_loss"] == pytest.approx(strategies["odd"]["loss"], rel=1e-6)
    assert reused.eval_tokens == sweep.eval_tokens


@pytest.mark.parametrize("max_tokens", [None, 64])
def test_a_late_skip_set_is_scored_as_if_asked_for_at_the_start(tiny, path, max_tokens, monkeypatch):
    # The sweep's lowest-influence set depends on the whole text. One batch: it joins the same pass, so
    # the full model runs once; several batches: a second pass. Either way its score is the set's own.
    from probes.core.runner.fused import FusedRunner
    from probes.core.runner.hooked import HookedRunner

    source = HeldOut(Dataset(TEXTS), "texts")
    fulls = []
    for runner in (FusedRunner, HookedRunner):
        monkeypatch.setattr(
            runner, "streams", lambda self, ids, real=runner.streams: fulls.append(1) or real(self, ids)
        )
    seen = []
    full, one, late = score_runs(
        tiny,
        source,
        [[1]],
        max_tokens=max_tokens,
        chosen_after=lambda: [0, 2],
        on_full_stream=lambda batch, resid: seen.append(len(batch.windows)),
    )
    batches = len(seen)
    assert (batches == 1) == (max_tokens is None)
    assert len(fulls) == (
        1 if batches == 1 else 2 * batches
    )  # a second pass only when the text took several batches
    alone_full, alone = score_runs(tiny, source, [[0, 2]])
    assert late.loss == pytest.approx(alone.loss, rel=1e-6)
    assert late.kl == pytest.approx(alone.kl, rel=1e-5, abs=1e-7)
    assert (late.agree, late.targets) == (alone.agree, alone.targets)
    again = score_runs(
        tiny, source, [[0, 2]], chosen_after=lambda: [0, 2]
    )  # a late set already asked for is not scored twice
    assert again[2] is again[1]
