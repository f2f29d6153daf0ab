"""Embedding matrices: ids equal the tokenizer's, each token form reads the rows picked by hand, numbers equal
transformers' own wte/wpe, --processed equals W_E, the PCA equals an SVD."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_cli

import probes
from probes.errors import ProbesError
from probes.studies.embeddings.study import COMMON, RARE

WORDS = ["thou", "thee", "king", "dog"]


def _pair(request, which):
    """(bridge, GPT2LMHeadModel loaded separately by transformers) for 'tiny' or 'bundled'."""
    return request.getfixturevalue(which), request.getfixturevalue(f"{which}_hf")


@pytest.fixture(scope="module")
def tiny_report(tiny):
    return probes.embeddings(tiny, processed=True)


def _ids(report, group):
    return [w.ids[0] for w in report.words if w.group == group]  # single-token forms only


# ---- token ids -------------------------------------------------------------------------------


def test_token_ids_equal_the_tokenizers(tiny_report, tiny):
    tok = tiny.tokenizer
    assert [w.word for w in tiny_report.words] == [*COMMON, *RARE]
    assert tiny_report.token_form == "space"  # the default
    for w in tiny_report.words:
        assert w.token_ids == tok(w.word, add_special_tokens=False)["input_ids"]
        assert w.space_token_ids == tok(" " + w.word, add_special_tokens=False)["input_ids"]
        assert w.ids == w.space_token_ids[:1] and w.used_str_tokens == [tok.decode(w.ids)]
        assert w.split == (len(w.space_token_ids) > 1)
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
        ws, (i,) = s.words[k], w.ids
        assert ws.norm == pytest.approx(norms[i].item(), abs=1e-5)
        assert ws.form_norms["first"] == pytest.approx(norms[w.token_ids[0]].item(), abs=1e-5)
        assert ws.norm_percentile == pytest.approx(
            100 * (norms < norms[i]).float().mean().item(), abs=100 / len(norms) + 1e-6
        )
        cos = F.cosine_similarity(wte[i][None], wte, dim=1)  # (d_vocab,)
        cos[i] = -2
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
    torch.testing.assert_close(
        torch.tensor(s.position_norms), torch.linalg.vector_norm(wpe, dim=1), atol=1e-5, rtol=0
    )
    assert s.summary["vocab"]["median_norm"] == pytest.approx(norms.median().item(), abs=1e-6)
    assert (
        s.summary["vocab"]["size"] == model.cfg.d_vocab and s.summary["vocab"]["d_model"] == model.cfg.d_model
    )


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
    assert c["split_rare"] == sum(len(w["space_token_ids"]) > 1 for w in rare) and c["n_rare"] == len(RARE)
    assert c["split_common"] == sum(len(w["space_token_ids"]) > 1 for w in common)


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
    ids = [w.ids[0] for w in r.words]
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
            assert (
                "token form: space"
                in (fig.axes[0].get_title() + (fig._suptitle.get_text() if fig._suptitle else ""))
                or name == "positions"
            )
    assert isinstance(tiny_report.figure_pca(), Figure)
    assert (
        len([a for a in tiny_report.figure_cosine().axes if a.images]) == 3
    )  # one heatmap per group, and common x rare
    from probes.studies.embeddings.study import Embeddings

    plain = Embeddings(
        model="m", meta={}, groups={}, words=[], checkpoint=tiny_report.checkpoint, pca=tiny_report.pca
    )
    with pytest.raises(ProbesError, match="processed=True"):
        plain.figure_norms("processed")


def drawn_labels(fig):
    """(the pixel boxes of the labels drawn, as savefig draws them; the hidden-labels note or None)."""
    from matplotlib.text import Annotation

    fig.canvas.draw()  # the layout and every position as savefig makes them
    renderer = fig.canvas.get_renderer()
    texts = fig.axes[0].texts
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in texts if isinstance(t, Annotation)]
    notes = [t.get_text() for t in texts if t.get_text().startswith("labels hidden")]
    return boxes, (notes[0] if notes else None)


def overlapping(boxes) -> list:
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]


def test_crowded_labels_never_overlap_and_the_hidden_are_counted():
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from probes.plots.embedding import pca_scatter

    rng = np.random.default_rng(0)
    for n in (8, 200):  # room for every label; far too many for the axes
        points = [
            (x, y, f"word{i}", ["common", "rare"][i % 2])
            for i, (x, y) in enumerate(rng.normal(0, 0.2, (n, 2)))
        ]
        fig = pca_scatter(rng.normal(size=(500, 2)), points, [0.2, 0.1], "crowded")
        FigureCanvasAgg(fig)
        boxes, note = drawn_labels(fig)
        assert overlapping(boxes) == []
        if n == 8:
            assert len(boxes) == 8 and note is None
        else:
            assert 0 < len(boxes) < n and note.startswith(f"labels hidden: {n - len(boxes)}\n")
            shown = {t.get_text() for t in fig.axes[0].texts}
            assert "word0" in shown  # earlier labels win the room


def test_the_embed_figures_labels_do_not_overlap(tiny_report):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in (tiny_report.figure_pca(), tiny_report.figure_scatter()):
        FigureCanvasAgg(fig)
        boxes, note = drawn_labels(fig)
        assert len(boxes) > 4 and overlapping(boxes) == [], note


# ---- CLI ----------------------------------------------------------------------------------------


def test_cli_json(tiny_dir, tiny):
    res = run_cli(*["embed", "-m", str(tiny_dir), "--json", "--neighbours", "3", "--processed"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["model"] == str(tiny_dir)
    assert (
        "checkpoint's own input embedding and learned positions "
        "(transformer.wte.weight and transformer.wpe.weight in" in d["source"]
    )
    assert [w["word"] for w in d["words"]] == [*COMMON, *RARE]
    assert d["token_form"] == "space" and "leading space" in d["token_form_means"]
    for w in d["words"]:
        assert w["token_ids"] == tiny.tokenizer(w["word"], add_special_tokens=False)["input_ids"]
        assert w["ids"] == w["space_token_ids"][:1] and len(w["neighbours"]) == 3
        assert set(w) >= {
            "word",
            "group",
            "token_form",
            "ids",
            "used_str_tokens",
            "token_ids",
            "str_tokens",
            "space_token_ids",
            "norm",
            "norm_percentile",
            "form_norms",
            "neighbours",
            "pca",
            "processed",
        }
        assert "vector" not in w  # only with --vectors
    assert set(d["cosine"]) == {"common", "rare"} and len(d["cosine"]["rare"]) == len(RARE)
    assert len(d["cross_cosine"]["matrix"]) == len(COMMON) and len(d["cross_cosine"]["matrix"][0]) == len(
        RARE
    )
    assert d["summary"]["comparison"]["n_common"] == len(COMMON)
    assert "processed" in d and len(d["position_norms"]) == tiny.cfg.n_ctx


def test_cli_text_and_plot_dir(tiny_dir, tmp_path):
    out = tmp_path / "figs" / "nested"
    res = run_cli(*["embed", "-m", str(tiny_dir), "--words", "thou,thee,king", "--plot-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "checkpoint's own input embedding" in res.stdout and "token form space" in res.stdout
    assert "thou" in res.stdout and "mean off-diagonal cosine" in res.stdout
    for name in ("norms", "cosine", "scatter", "pca", "positions"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, match",
    [
        (["--common", "dog,,city"], "empty word"),
        (["--rare", ""], "--rare is empty"),
        (["--words", " , "], "empty word"),
        (["--neighbours", "-2"], "top"),
        (["--top", "-1"], "top"),
        (["--token-form", "spaces"], "unknown token form 'spaces'; choose one of first, space, mean, last"),
        (["--vectors"], "add --json"),
        (["--words", '"dog'], "not closed"),
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


# ---- token forms ----------------------------------------------------------------------------------


def _hand_vector(wte, tok, word, form):
    """The word's vector under `form`, picked from raw wte rows with the tokenizer by hand."""
    bare = tok(word, add_special_tokens=False)["input_ids"]
    spaced = tok(word if word.startswith(" ") else " " + word, add_special_tokens=False)["input_ids"]
    rows = {"first": bare[:1], "space": spaced[:1], "last": spaced[-1:], "mean": spaced}[form]
    return wte[rows].mean(dim=0), rows


@pytest.mark.parametrize("form", ["first", "space", "mean", "last"])
def test_each_token_form_reads_the_rows_picked_by_hand(tiny, tiny_hf, form):
    words = ["thou", "xqzt", " king", "uvuvwevwe"]
    r = probes.embeddings(tiny, words=words, token_form=form, top=3)
    wte = tiny_hf.transformer.wte.weight.detach().float().cpu()  # (d_vocab, d_model)
    assert r.vectors.shape == (len(words), tiny.cfg.d_model) and r.token_form == form
    for k, w in enumerate(r.words):
        ref, rows = _hand_vector(wte, tiny.tokenizer, words[k], form)
        assert w.ids == rows and w.token_form == form
        torch.testing.assert_close(r.vectors[k], ref, atol=1e-6, rtol=0)
        assert r.checkpoint.words[k].norm == pytest.approx(ref.norm().item(), abs=1e-5)
        assert r.checkpoint.words[k].form_norms[form] == pytest.approx(ref.norm().item(), abs=1e-5)
        assert not {n.token_id for n in r.checkpoint.words[k].neighbours} & set(rows)  # own tokens left out
        cos = F.cosine_similarity(ref[None], wte, dim=1)  # (d_vocab,)
        cos[rows] = -2
        assert [n.token_id for n in r.checkpoint.words[k].neighbours] == cos.topk(3).indices.tolist()
    assert (
        r.words[2].space_token_ids == tiny.tokenizer(" king", add_special_tokens=False)["input_ids"]
    )  # no second space


def test_token_forms_on_gpt2s_vocabulary(gpt2_home):
    # The snapshot folder itself: HF_HOME set by a fixture is too late once huggingface_hub has read it.
    (snapshot,) = (gpt2_home / "hub" / "models--gpt2" / "snapshots").iterdir()
    model = probes.load(str(snapshot))
    tok = model.tokenizer
    assert len(tok) == 50257
    first = probes.embeddings(model, common=["dog", "city"], rare=["xqzt", "blorpt"], token_form="first")
    space = probes.embeddings(model, common=["dog", "city"], rare=["xqzt", "blorpt"])
    assert [w.used_str_tokens for w in first.words] == [
        ["dog"],
        ["city"],
        ["x"],
        ["bl"],
    ]  # the classic pieces
    assert [w.used_str_tokens for w in space.words] == [[" dog"], [" city"], [" x"], [" bl"]]
    assert space.words[0].ids == tok(" dog", add_special_tokens=False)["input_ids"] and space.words[
        0
    ].ids == [3290]
    assert not space.words[0].split and space.words[2].split
    mean = probes.embeddings(model, words=["blorpt"], token_form="mean")
    last = probes.embeddings(model, words=["blorpt"], token_form="last")
    assert [tok.decode([i]) for i in mean.words[0].ids] == [" bl", "or", "pt"] and last.words[
        0
    ].used_str_tokens == ["pt"]
    from probes.studies.embeddings.study import checkpoint_embeddings

    wte = checkpoint_embeddings(model).tokens
    torch.testing.assert_close(mean.vectors[0], wte[mean.words[0].ids].mean(0), atol=1e-7, rtol=0)
    torch.testing.assert_close(space.vectors, wte[[3290, 1748, 2124, 698]], atol=0, rtol=0)
    assert tok.decode([2124]) == " x" and tok.decode([698]) == " bl"
    for fig in (space.figure_pca(), space.figure_scatter()):
        assert fig.axes[0].get_title().endswith("(checkpoint wte; token form: space)")


def test_bad_token_form_raises(tiny):
    with pytest.raises(ProbesError, match="unknown token form 'firts'.*did you mean first"):
        probes.embeddings(tiny, token_form="firts")


# ---- cross-group cosines and PCA ------------------------------------------------------------------


@pytest.mark.parametrize("form", ["space", "mean"])
def test_cross_cosines_equal_torch_on_raw_rows(tiny, tiny_hf, form):
    r = probes.embeddings(tiny, token_form=form, top=0)
    wte = tiny_hf.transformer.wte.weight.detach().float().cpu()
    vec = {
        g: torch.stack([_hand_vector(wte, tiny.tokenizer, w, form)[0] for w in ws])
        for g, ws in r.groups.items()
    }
    ref = F.cosine_similarity(
        vec["common"][:, None, :], vec["rare"][None, :, :], dim=-1
    )  # (n_common, n_rare)
    x = r.cross_cosine
    assert (x["rows"], x["columns"]) == ("common", "rare")
    torch.testing.assert_close(torch.tensor(x["matrix"]), ref, atol=1e-5, rtol=0)
    assert x["mean"] == pytest.approx(ref.mean().item(), abs=1e-6)
    assert r.summary["comparison"]["mean_cross_cosine"] == x["mean"]
    assert probes.embeddings(tiny, words=["thou", "king"]).cross_cosine is None  # one group: nothing to cross


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_pca_equals_a_manual_svd_up_to_sign(request, which):
    model, hf = _pair(request, which)
    r = probes.embeddings(model, top=0)
    wte = hf.transformer.wte.weight.detach().double().cpu()  # (d_vocab, d_model)
    centred = wte - wte.mean(dim=0)
    _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
    ref = centred @ vh[:2].T  # (d_vocab, 2)
    got = r.pca.coords.double()
    signs = torch.sign((got * ref).sum(dim=0))  # each component may come out flipped
    torch.testing.assert_close(got * signs, ref, atol=1e-4, rtol=1e-3)
    assert r.pca.explained == pytest.approx((sv[:2] ** 2 / (sv**2).sum()).tolist(), rel=1e-6)
    words_ref = (r.vectors.double() - wte.mean(dim=0)) @ vh[:2].T  # (n_words, 2)
    torch.testing.assert_close(r.word_coords.double() * signs, words_ref, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(torch.tensor([e["pca"] for e in r.as_dict()["words"]]), r.word_coords)


# ---- word lists and --vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        (" dog", [" dog"]),
        ("dog, city", ["dog", "city"]),
        (" dog,city", [" dog", "city"]),
        ('dog," city"', ["dog", " city"]),
        ('"a,b", c ', ["a,b", "c"]),
        ("dog,,city", ["dog", "", "city"]),
    ],
)
def test_word_lists_keep_a_quoted_leading_space(text, words):
    from probes.studies.embeddings.forms import parse_words

    assert parse_words(text, "--words") == words


def test_cli_vectors_round_trip_and_leading_space_kept(tiny_dir, tiny, tiny_hf):
    res = run_cli(
        "embed",
        "-m",
        str(tiny_dir),
        "--json",
        "--vectors",
        "--words",
        ' king,"  thou",king',
        "--token-form",
        "space",
        "--processed",
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert [w["word"] for w in d["words"]] == [" king", "  thou", "king"]
    tok = tiny.tokenizer
    assert (
        d["words"][0]["space_token_ids"] == tok(" king", add_special_tokens=False)["input_ids"]
    )  # not "  king"
    assert d["words"][0]["ids"] == d["words"][2]["ids"]  # " king" given or added: the same token
    assert d["words"][1]["space_token_ids"] == tok("  thou", add_special_tokens=False)["input_ids"]
    wte = tiny_hf.transformer.wte.weight.detach().float().cpu()
    got = torch.tensor([w["vector"] for w in d["words"]])  # (n_words, d_model), in d["words"] order
    torch.testing.assert_close(
        got, wte[[w["ids"][0] for w in d["words"]]], atol=0, rtol=0
    )  # float32 survives JSON
    w_e = tiny.W_E.detach().float().cpu()
    torch.testing.assert_close(
        torch.tensor([w["processed"]["vector"] for w in d["words"]]),
        w_e[[w["ids"][0] for w in d["words"]]],
        atol=1e-7,
        rtol=0,
    )


def test_cli_token_form_first_reproduces_the_classic_ids(tiny_dir, tiny):
    res = run_cli("embed", "-m", str(tiny_dir), "--json", "--token-form", "first")
    d = json.loads(res.stdout)
    assert d["token_form"] == "first"
    assert [w["ids"] for w in d["words"]] == [
        tiny.tokenizer(w, add_special_tokens=False)["input_ids"][:1] for w in (*COMMON, *RARE)
    ]
    text = run_cli("embed", "-m", str(tiny_dir), "--token-form", "mean").stdout
    assert "token form mean: mean of the vectors" in text and "tokens used (mean)" in text
    assert "common (rows) x rare (columns): mean" in text


def test_a_vector_read_from_a_bare_space_or_one_letter_says_so(bundled, tmp_path):
    """#28 item 20: ' xqzt' splits into '␣' + ..., so the default form reads a bare space; every output says
    when a word's vector is such a piece."""
    emb = probes.embeddings(bundled, common=["dog", "science"], rare=["xqzt", "qwv"], words=None)
    pieces = {w.word: w.weak_piece for w in emb.words}
    assert pieces["dog"] is None
    assert pieces["xqzt"] == "a bare space" and [t.strip() for t in emb.words[2].used_str_tokens] == [""]
    assert pieces["science"] == "one character"
    d = emb.as_dict()
    assert [w["weak_piece"] for w in d["words"]] == list(pieces.values())
    c = d["summary"]["comparison"]
    assert c["weak_common"] == 1 and c["weak_rare"] == sum(p is not None for p in list(pieces.values())[2:])
    mean = probes.embeddings(bundled, common=["dog", "science"], rare=["xqzt", "qwv"], token_form="mean")
    assert all(w.weak_piece is None for w in mean.words)  # the mean reads every piece

    from probes.report.sections import embeddings_section  # the report's conclusion says so too

    text = "\n".join(embeddings_section(d))
    assert "that piece is a bare space or a single character" in text
    assert "Mean norm in each token form: common first " in text and "; rare first " in text  # both forms
    r = run_cli("embed", "--common", "dog,science", "--rare", "xqzt,qwv")
    assert r.exit_code == 0 and "† the vector is a bare space or a single character" in r.stdout
    assert "xqzt †" in r.stdout and "dog *" not in r.stdout
