"""Embedding matrices: ids equal the tokenizer's, numbers equal transformers' own wte/wpe, --processed equals W_E."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_cli

import probes
from probes.studies.embeddings import COMMON, RARE
from probes.errors import ProbesError

WORDS = ["thou", "thee", "king", "dog"]


def _pair(request, which):
    """(bridge, GPT2LMHeadModel loaded separately by transformers) for 'tiny' or 'bundled'."""
    return request.getfixturevalue(which), request.getfixturevalue(f"{which}_hf")


@pytest.fixture(scope="module")
def tiny_report(tiny):
    return probes.embeddings(tiny, processed=True)


def _ids(report, group):
    return [w.id for w in report.words if w.group == group]


# ---- token ids -------------------------------------------------------------------------------


def test_token_ids_equal_the_tokenizers(tiny_report, tiny):
    tok = tiny.tokenizer
    assert [w.word for w in tiny_report.words] == [*COMMON, *RARE]
    for w in tiny_report.words:
        assert w.token_ids == tok(w.word, add_special_tokens=False)["input_ids"]
        assert w.space_token_ids == tok(" " + w.word, add_special_tokens=False)["input_ids"]
        assert w.id == w.token_ids[0]
        assert w.split == (len(w.token_ids) > 1)
        assert "".join(w.str_tokens) == w.word  # the pieces spell the word (all ASCII here)
    d = tiny_report.as_dict()
    assert [e["token_ids"] for e in d["words"]] == [w.token_ids for w in tiny_report.words]
    assert {e["group"] for e in d["words"]} == {"common", "rare"}


# ---- numbers against transformers --------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_norms_and_cosines_equal_transformers_wte(request, which):
    model, hf = _pair(request, which)
    report = probes.embeddings(model, words=WORDS, common=list(COMMON), rare=list(RARE), top=4)
    wte = hf.transformer.wte.weight.detach().float().cpu()  # (d_vocab, d_model), as transformers loads it
    wpe = hf.transformer.wpe.weight.detach().float().cpu()  # (n_ctx, d_model)
    norms = torch.linalg.vector_norm(wte, dim=1)
    s = report.checkpoint

    for k, w in enumerate(report.words):
        ws = s.words[k]
        assert ws.norm == pytest.approx(norms[w.id].item(), abs=1e-5)
        assert ws.space_norm == pytest.approx(norms[w.space_id].item(), abs=1e-5)
        assert ws.norm_percentile == pytest.approx(100 * (norms < norms[w.id]).float().mean().item(), abs=100 / len(norms) + 1e-6)
        cos = F.cosine_similarity(wte[w.id][None], wte, dim=1)  # (d_vocab,)
        cos[w.id] = -2
        ref = cos.topk(4)
        assert [n.token_id for n in ws.neighbours] == ref.indices.tolist()
        assert [n.cosine for n in ws.neighbours] == pytest.approx(ref.values.tolist(), abs=1e-5)
        assert [n.token for n in ws.neighbours] == [model.tokenizer.decode([i]) for i in ref.indices.tolist()]

    for group in ("common", "rare", "words"):
        ids = _ids(report, group)
        v = wte[ids]  # (n, d_model)
        ref = F.cosine_similarity(v[:, None, :], v[None, :, :], dim=-1)  # (n, n)
        torch.testing.assert_close(torch.tensor(s.cosine[group]), ref, atol=1e-5, rtol=0)
        g = s.summary["groups"][group]
        assert g["mean_norm"] == pytest.approx(norms[ids].mean().item(), abs=1e-5)
        off = ref[~torch.eye(len(ids), dtype=torch.bool)]
        assert g["mean_cosine"] == pytest.approx(off.mean().item(), abs=1e-5)

    torch.testing.assert_close(torch.tensor(s.vocab_norms), norms, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(s.position_norms), torch.linalg.vector_norm(wpe, dim=1), atol=1e-5, rtol=0)
    assert s.summary["vocab"]["median_norm"] == pytest.approx(norms.median().item(), abs=1e-6)
    assert s.summary["vocab"]["size"] == model.cfg.d_vocab and s.summary["vocab"]["d_model"] == model.cfg.d_model


def test_summary_compares_common_and_rare_in_numbers(tiny_report):
    s = tiny_report.summary
    words = tiny_report.as_dict()["words"]
    common = [w for w in words if w["group"] == "common"]
    rare = [w for w in words if w["group"] == "rare"]
    c = s["comparison"]
    assert c["mean_norm_common"] == pytest.approx(sum(w["norm"] for w in common) / len(common))
    assert c["mean_norm_rare"] == pytest.approx(sum(w["norm"] for w in rare) / len(rare))
    assert c["norm_ratio"] == pytest.approx(c["mean_norm_common"] / c["mean_norm_rare"])
    assert c["mean_cosine_common"] == s["groups"]["common"]["mean_cosine"]
    assert c["split_rare"] == sum(len(w["token_ids"]) > 1 for w in rare) and c["n_rare"] == len(RARE)
    assert c["split_common"] == sum(len(w["token_ids"]) > 1 for w in common)


def test_custom_words_are_one_group(tiny):
    r = probes.embeddings(tiny, words=["thou", "thee", "king"], top=2)
    assert r.groups == {"words": ["thou", "thee", "king"]}
    assert list(r.cosine) == ["words"] and len(r.cosine["words"]) == 3
    assert r.summary["comparison"] is None
    assert all(len(w.neighbours) == 2 for w in r.checkpoint.words)


# ---- the centring trap ------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_processed_numbers_are_W_E_and_differ_from_the_checkpoint(request, which):
    model = request.getfixturevalue(which)
    r = probes.embeddings(model, processed=True, top=3)
    w_e = model.W_E.detach().float().cpu()  # centred by compatibility mode
    norms = torch.linalg.vector_norm(w_e, dim=1)
    ids = [w.id for w in r.words]
    got = torch.tensor([x.norm for x in r.processed.words])
    torch.testing.assert_close(got, norms[ids], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(r.processed.vocab_norms), norms, atol=1e-5, rtol=0)
    v = w_e[_ids(r, "rare")]
    ref = F.cosine_similarity(v[:, None, :], v[None, :, :], dim=-1)
    torch.testing.assert_close(torch.tensor(r.processed.cosine["rare"]), ref, atol=1e-5, rtol=0)
    pos = torch.linalg.vector_norm(model.W_pos.detach().float().cpu(), dim=1)
    torch.testing.assert_close(torch.tensor(r.processed.position_norms), pos, atol=1e-5, rtol=0)

    ckpt = torch.tensor(r.checkpoint.vocab_norms)
    assert (ckpt - norms).abs().max() > 1e-4  # centring changed the matrix: the two must not be confused
    assert r.as_dict()["processed"]["summary"]["vocab"]["median_norm"] != r.summary["vocab"]["median_norm"]


# ---- errors and figures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(common=[]), "common list is empty"),
        (dict(rare=["xqzt", ""]), "empty word at position 2"),
        (dict(words=["thou", "  "]), "empty word"),
        (dict(common="dog,city"), "list of words"),
        (dict(top=-1), "top"),
        (dict(top=10**6), "vocabulary has only"),
    ],
)
def test_bad_words_raise(tiny, kwargs, match):
    with pytest.raises(ProbesError, match=match):
        probes.embeddings(tiny, **kwargs)


def test_figures_are_returned_not_shown(tiny_report, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("the library called plt.show"))
    for name in ("norms", "cosine", "scatter", "positions"):
        for which in ("checkpoint", "processed"):
            fig = getattr(tiny_report, f"figure_{name}")(which)
            assert isinstance(fig, Figure)
    assert len([a for a in tiny_report.figure_cosine().axes if a.images]) == 2  # one heatmap per group
    from probes.studies.embeddings import Embeddings

    plain = Embeddings(model="m", meta={}, groups={}, words=[], checkpoint=tiny_report.checkpoint)
    with pytest.raises(ProbesError, match="processed=True"):
        plain.figure_norms("processed")


# ---- CLI ----------------------------------------------------------------------------------------



def test_cli_json(tiny_dir, tiny):
    res = run_cli(*["embed", "-m", str(tiny_dir), "--json", "--neighbours", "3", "--processed"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["model"] == str(tiny_dir)
    assert "checkpoint's own wte" in d["source"]
    assert [w["word"] for w in d["words"]] == [*COMMON, *RARE]
    for w in d["words"]:
        assert w["token_ids"] == tiny.tokenizer(w["word"], add_special_tokens=False)["input_ids"]
        assert w["id"] == w["token_ids"][0] and len(w["neighbours"]) == 3
        assert set(w) >= {"word", "group", "token_ids", "str_tokens", "id", "space_token_ids", "norm", "norm_percentile",
                          "neighbours", "processed"}
    assert set(d["cosine"]) == {"common", "rare"} and len(d["cosine"]["rare"]) == len(RARE)
    assert d["summary"]["comparison"]["n_common"] == len(COMMON)
    assert "processed" in d and len(d["position_norms"]) == tiny.cfg.n_ctx


def test_cli_text_and_plot_dir(tiny_dir, tmp_path):
    out = tmp_path / "figs" / "nested"
    res = run_cli(*["embed", "-m", str(tiny_dir), "--words", "thou,thee,king", "--plot-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "checkpoint's own wte" in res.stdout
    assert "thou" in res.stdout and "mean off-diagonal cosine" in res.stdout
    for name in ("norms", "cosine", "scatter", "positions"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, match",
    [
        (["--common", "dog,,city"], "empty word"),
        (["--rare", ""], "--rare is empty"),
        (["--words", " , "], "empty word"),
        (["--neighbours", "-2"], "top"),
            (["--top", "-1"], "top"),
    ],
)
def test_cli_bad_words_are_one_line(args, match):
    res = run_cli(*["embed", *args])  # fails before any model is loaded
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]
    assert "Traceback" not in res.output and res.stdout == ""


def test_cli_plot_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file.png"
    f.write_text("x")
    res = run_cli(*["embed", "--plot-dir", str(f)])
    assert res.exit_code == 2 and "is a file" in res.stderr
