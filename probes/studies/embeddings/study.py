"""Embedding matrices: ids, norms, neighbours and cosines of chosen words in the checkpoint's own input
embedding (GPT-2's wte, Llama's embed_tokens, ...) and learned position embedding (wpe), where it has one.

    emb = probes.embeddings(model)                      # the seed's common and rare words, token form "space"
    emb = probes.embeddings(model, token_form="first")  # the classic first-sub-token numbers
    emb = probes.embeddings(model, words=["thou", "thee", "king"], top=10)
    emb.vectors                                         # (n_words, d_model), rows in emb.words order
    emb.summary["comparison"]["mean_cross_cosine"]      # common x rare
    fig = emb.figure_pca()                              # also figure_norms, _cosine, _scatter, _positions

A word's vector depends on its token form (`probes/studies/embeddings/forms.py`): `first`, `space`
(the default), `mean` or `last`. TransformerLens' compatibility mode centres W_E, W_pos and W_U
(in place on the wrapped transformers model), so `model.W_E` has other norms and cosines than the
checkpoint. The statistics here are read from the checkpoint's safetensors file(s) instead: exactly
the tensors transformers loads as the input embedding (and `wpe`), as float32. The summary's `matrices`
names them, says whether the output embedding is tied to the input one, and `positions` is None
for a model without learned positions (rotary).
`processed=True` computes the same numbers from the centred `model.W_E` / `model.W_pos` as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from probes.core.prompt import as_text, token_strings
from probes.errors import ProbesError
from probes.studies.embeddings.forms import (
    DEFAULT_TOKEN_FORM,
    TOKEN_FORMS,
    check_token_form,
    form_ids,
    with_space,
)
from probes.studies.embeddings.pca import vocab_pca
from probes.studies.embeddings.result import (
    Embeddings,
    MatrixStats,
    Neighbour,
    Word,
    WordStats,
)
from probes.tokens import check_top

COMMON = ("dog", "city", "book", "love", "science")
RARE = ("xqzt", "blorpt", "thraldor", "uvuvwevwe", "zzzzz")


def word_groups(common=None, rare=None, words=None) -> dict[str, list[str]]:
    """{group: words}: the seed's two lists by default; with `words`, that group plus any list given."""
    if words is None:
        groups = {"common": COMMON if common is None else common, "rare": RARE if rare is None else rare}
    else:
        groups = {"common": common, "rare": rare, "words": words}
    return check_words(groups)


def check_words(groups: dict[str, Sequence[str] | None]) -> dict[str, list[str]]:
    """Groups with at least one non-empty word each, or a ProbesError naming the group."""
    out = {}
    for name, words in groups.items():
        if words is None:
            continue
        if isinstance(words, str):
            raise ProbesError(
                f"{name}: give a list of words, not the string {words!r} (e.g. {words.split(',')!r})"
            )
        words = [as_text(w, f"a word of the {name} list") if isinstance(w, str) else w for w in words]
        if not words:
            raise ProbesError(f"the {name} list is empty; give at least one word, e.g. --{name} dog,city")
        for k, w in enumerate(words):
            if not isinstance(w, str) or not w.strip():
                raise ProbesError(
                    f"the {name} list has an empty word at position {k + 1} ({words!r}); "
                    "remove the stray comma or give a word"
                )
        out[name] = words
    if not out:
        raise ProbesError("no words to look at; give common and rare words, or words")
    return out


def embeddings(
    model,
    common: Sequence[str] | None = None,
    rare: Sequence[str] | None = None,
    words: Sequence[str] | None = None,
    top: int = 5,
    processed: bool = False,
    token_form: str = DEFAULT_TOKEN_FORM,
) -> Embeddings:
    """Ids, norms, neighbours, within- and cross-group cosines and a PCA of `common` and `rare` words.

    Without arguments, the seed's lists (COMMON, RARE). `words` is one custom group; with it,
    `common` and `rare` are included only when given. `token_form` says which token(s) stand for a
    word (see TOKEN_FORMS): "space" (default) reads the word with a leading space, "first" the
    classic first sub-token of the bare word. `processed=True` adds the same numbers from
    TransformerLens' centred W_E (the PCA is of the checkpoint's wte only).
    """
    import torch

    groups = word_groups(common, rare, words)
    check_top(top, minimum=0)
    check_token_form(token_form)

    tok = model.tokenizer
    items = [_tokenize(tok, w, g, token_form) for g, ws in groups.items() for w in ws]
    found = checkpoint_embeddings(model)
    wte, wpe, where = (
        found.tokens,
        found.positions,
        found.where,
    )  # (d_vocab, d_model), (n_ctx, d_model) or None
    if top > wte.shape[0] - 1:
        raise ProbesError(f"top {top}: the vocabulary has only {wte.shape[0]} tokens")
    for w in items:
        bad = [i for i in w.token_ids + w.space_token_ids if i >= wte.shape[0]]
        if bad:
            raise ProbesError(f"{w.word!r}: the tokenizer gives ids {bad} beyond wte's {wte.shape[0]} rows")

    decode = _decoder(tok)
    what = "input embedding" + (" and learned positions" if wpe is not None else "")
    source = (
        f"the checkpoint's own {what} ({where}) as transformers loads them, in float32; not "
        "TransformerLens' centred W_E"
    )
    stats = _stats("checkpoint", source, wte, wpe, items, groups, top, decode)
    stats.summary["matrices"] = found.keys
    proc = None
    if processed:
        with torch.no_grad():
            w_e = model.W_E.detach().float().cpu()
            w_pos = model.W_pos.detach().float().cpu() if wpe is not None else None
        proc = _stats(
            "processed",
            "TransformerLens' model.W_E and model.W_pos, centred by compatibility mode",
            w_e,
            w_pos,
            items,
            groups,
            top,
            decode,
        )
    pca = vocab_pca(wte)

    from probes.meta import model_meta

    meta = model_meta(model)
    return Embeddings(
        model=meta["model"],
        meta=meta,
        groups=groups,
        words=items,
        checkpoint=stats,
        processed=proc,
        top=top,
        token_form=token_form,
        pca=pca,
        word_coords=pca.project(stats.vectors),
    )


def _decoder(tok):
    cache: dict[int, str] = {}

    def decode(i: int) -> str:
        if i not in cache:
            cache[i] = token_strings(tok, [i])[0]
        return cache[i]

    return decode


def _tokenize(tok, word: str, group: str, form: str) -> Word:
    # add_special_tokens=False: the bridge's tokenizer prepends <|endoftext|> otherwise.
    ids = list(tok.encode(word, add_special_tokens=False))
    space = list(tok.encode(with_space(word), add_special_tokens=False))
    assert ids and space, word  # a non-empty string always has at least one byte-level token
    used = form_ids(ids, space, form)
    return Word(
        word=word,
        group=group,
        token_ids=ids,
        str_tokens=token_strings(tok, ids),
        space_token_ids=space,
        space_str_tokens=token_strings(tok, space),
        token_form=form,
        ids=used,
        used_str_tokens=token_strings(tok, used),
    )


@dataclass
class Matrices:
    """The checkpoint's own embedding matrices, as float32 CPU tensors read from its safetensors."""

    tokens: object  # (d_vocab, d_model) the input embedding
    positions: object | None  # (n_ctx, d_model) learned positions, or None (rotary and other schemes)
    keys: dict  # {"tokens": name, "positions": name or None, "output": name, or "tied"}
    where: str  # the tensor names and files, in words


def checkpoint_embeddings(model) -> Matrices:
    """The checkpoint's input embedding (and learned position embedding, if any), read from its safetensors.

    The tensors are found by the parameters of the transformers model that loaded them
    (`get_input_embeddings`, `get_output_embeddings`), so any architecture's names work.
    """
    from safetensors import safe_open

    from probes.core.checkpoint import renamer
    from probes.core.load import source_of

    src = source_of(model)
    folder = src.folder if src.kind != "external" else src.path
    files = sorted(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        raise ProbesError(
            f"cannot find the checkpoint of {src.name!r} ({folder} holds no *.safetensors); embedding "
            "statistics are read from the checkpoint's own embedding, so load the model with probes.load"
        )
    hf = model.original_model
    rename = renamer(hf) or (lambda k: k)
    # The bridge wraps each transformers module as `_original_component`; the checkpoint has the plain names.
    names = {
        id(p): rename(n.replace("._original_component", ""))
        for n, p in hf.named_parameters(remove_duplicate=False)
    }
    want = {"tokens": names[id(hf.get_input_embeddings().weight)]}
    position = next((n for n in names.values() if n.endswith(_POSITION_NAMES)), None)
    if position is not None:
        want["positions"] = position
    text = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
    tied = bool(getattr(text, "tie_word_embeddings", False))
    out = hf.get_output_embeddings()
    output = "tied" if tied or out is None else names.get(id(out.weight), "separate")
    found = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():
                for what, name in want.items():
                    if rename(key) == name and what not in found:
                        found[what] = (fh.get_tensor(key).float(), key, f.name)  # fp16 -> fp32 is exact
    missing = [want[k] for k in want if k not in found]
    if missing:
        raise ProbesError(f"{folder}: the checkpoint has no {' or '.join(missing)}")
    files_of = {found[k][2] for k in want}
    if len(files_of) == 1:
        where = f"{' and '.join(found[k][1] for k in want)} in {files_of.pop()}"
    else:
        where = ", ".join(f"{found[k][1]} in {found[k][2]}" for k in want)
    return Matrices(
        tokens=found["tokens"][0],
        positions=found["positions"][0] if "positions" in found else None,
        keys={
            "tokens": found["tokens"][1],
            "positions": found.get("positions", (0, None))[1],
            "output": output,
        },
        where=where,
    )


# Learned absolute position embeddings, by the names architectures give them.
_POSITION_NAMES = ("wpe.weight", "embed_positions.weight", "position_embeddings.weight")


def _percentile(vocab_norms, value: float) -> float:
    """% of the vocabulary whose norm is below `value` (ties count half)."""
    below = (vocab_norms < value).sum().item()
    equal = (vocab_norms == value).sum().item()
    return 100.0 * (below + 0.5 * equal) / vocab_norms.numel()


def _stats(label, source, wte, wpe, items, groups, k, decode) -> MatrixStats:
    import torch

    norms = wte.norm(dim=-1)  # (d_vocab,)
    unit = wte / norms.clamp_min(1e-12)[:, None]  # (d_vocab, d_model)
    vectors = torch.stack([wte[w.ids].mean(dim=0) for w in items])  # (n_words, d_model); one row: exact
    vec_norms = vectors.norm(dim=-1)  # (n_words,)
    vec_unit = vectors / vec_norms.clamp_min(1e-12)[:, None]
    sims = vec_unit @ unit.T  # (n_words, d_vocab)
    for j, w in enumerate(items):
        sims[j, w.ids] = -float("inf")  # the tokens a vector is made of are not its neighbours
    top = sims.topk(k, dim=-1) if k else None
    per_word = []
    for j, w in enumerate(items):
        nb = (
            []
            if top is None
            else [Neighbour(int(i), decode(int(i)), float(c)) for c, i in zip(top.values[j], top.indices[j])]
        )
        n = float(vec_norms[j])
        by_form = {
            f: float(wte[form_ids(w.token_ids, w.space_token_ids, f)].mean(dim=0).norm()) for f in TOKEN_FORMS
        }
        per_word.append(WordStats(n, _percentile(norms, n), nb, by_form))

    cosine, group_summary = {}, {}
    for g in groups:
        members = [j for j, w in enumerate(items) if w.group == g]
        u = vec_unit[members]  # (n, d_model)
        mat = u @ u.T  # (n, n)
        n = len(members)
        off = mat[~torch.eye(n, dtype=torch.bool)]  # (n * (n - 1),)
        cosine[g] = mat.tolist()
        group_summary[g] = {
            "n_words": n,
            "mean_norm": sum(per_word[j].norm for j in members) / n,
            "mean_norm_percentile": sum(per_word[j].norm_percentile for j in members) / n,
            "mean_norm_by_form": {
                f: sum(per_word[j].form_norms[f] for j in members) / n for f in TOKEN_FORMS
            },
            "mean_cosine": float(off.mean()) if n > 1 else None,  # off-diagonal only
            "n_split": sum(items[j].split for j in members),  # in the chosen form
            "n_weak": sum(items[j].weak_piece is not None for j in members),  # read from a space or a letter
            "n_bare_split": sum(len(items[j].token_ids) > 1 for j in members),
            "n_space_split": sum(len(items[j].space_token_ids) > 1 for j in members),
        }
    cross = None
    if "common" in groups and "rare" in groups:
        c = [j for j, w in enumerate(items) if w.group == "common"]
        r = [j for j, w in enumerate(items) if w.group == "rare"]
        mat = vec_unit[c] @ vec_unit[r].T  # (n_common, n_rare)
        cross = {"rows": "common", "columns": "rare", "matrix": mat.tolist(), "mean": float(mat.mean())}
    summary = {
        "vocab": {
            "size": int(norms.numel()),
            "d_model": int(wte.shape[1]),
            "median_norm": float(norms.median()),
            "mean_norm": float(norms.mean()),
            "min_norm": float(norms.min()),
            "max_norm": float(norms.max()),
        },
        "groups": group_summary,
        "comparison": _compare(group_summary, cross),
        "positions": None
        if wpe is None
        else {
            "n": int(wpe.shape[0]),
            "mean_norm": float(wpe.norm(dim=-1).mean()),
            "norm_first": float(wpe[0].norm()),
            "norm_last": float(wpe[-1].norm()),
        },
    }
    return MatrixStats(
        label=label,
        source=source,
        vocab_norms=norms.tolist(),
        position_norms=None if wpe is None else wpe.norm(dim=-1).tolist(),
        words=per_word,
        cosine=cosine,
        cross_cosine=cross,
        summary=summary,
        vectors=vectors,
    )


def _compare(groups: dict, cross: dict | None) -> dict | None:
    """Common against rare, in numbers; None unless both groups are there."""
    if "common" not in groups or "rare" not in groups:
        return None
    c, r = groups["common"], groups["rare"]
    diff = (
        None if c["mean_cosine"] is None or r["mean_cosine"] is None else c["mean_cosine"] - r["mean_cosine"]
    )
    return {
        "mean_norm_common": c["mean_norm"],
        "mean_norm_rare": r["mean_norm"],
        "norm_ratio": c["mean_norm"] / r["mean_norm"] if r["mean_norm"] else None,  # common / rare
        "mean_norm_percentile_common": c["mean_norm_percentile"],
        "mean_norm_percentile_rare": r["mean_norm_percentile"],
        "mean_cosine_common": c["mean_cosine"],
        "mean_cosine_rare": r["mean_cosine"],
        "mean_cosine_difference": diff,
        "mean_cross_cosine": cross["mean"],
        "split_common": c["n_split"],
        "weak_common": c["n_weak"],
        "n_common": c["n_words"],
        "split_rare": r["n_split"],
        "weak_rare": r["n_weak"],
        "n_rare": r["n_words"],
    }
