"""Embedding results: the words as the tokenizer sees them, the statistics of one matrix, and their
figures."""

from __future__ import annotations

from dataclasses import dataclass

from probes.errors import ProbesError
from probes.numbers import show_number
from probes.tokens import model_label, show_token


@dataclass
class Neighbour:
    token_id: int
    token: str
    cosine: float

    def as_dict(self) -> dict:
        return {"id": self.token_id, "token": self.token, "cosine": self.cosine}


@dataclass
class WordStats:
    """One matrix's numbers for one word's vector (in the chosen token form), and its norm in every form."""

    norm: float
    norm_percentile: float  # % of the vocabulary with a smaller norm
    neighbours: list[Neighbour]  # nearest tokens by cosine, the word's own tokens left out
    form_norms: dict[str, float]  # token form -> norm of the word's vector in that form

    def as_dict(self) -> dict:
        return {
            "norm": self.norm,
            "norm_percentile": self.norm_percentile,
            "neighbours": [n.as_dict() for n in self.neighbours],
            "form_norms": self.form_norms,
        }


@dataclass
class Word:
    """A word as the tokenizer sees it (bare and with a leading space), and the token(s) its vector is read
    from."""

    word: str
    group: str
    token_ids: list[int]  # the word as given
    str_tokens: list[str]
    space_token_ids: list[int]  # the word with one leading space: how GPT-2 usually meets it inside text
    space_str_tokens: list[str]
    token_form: str  # see probes.studies.embeddings.forms.TOKEN_FORMS
    ids: list[int]  # the ids whose vectors (their mean, for "mean") are the word's vector
    used_str_tokens: list[str]

    @property
    def split(self) -> bool:
        """The text the token form reads is several tokens, so first/space/last use one piece of it."""
        return len(self.token_ids if self.token_form == "first" else self.space_token_ids) > 1

    @property
    def weak_piece(self) -> str | None:
        """'a bare space' or 'one character' when the vector is read from such a piece of a split word (so it
        measures that piece, hardly the word: ' xqzt' splits into '␣' + 'x' + ...); None otherwise."""
        if not self.split or self.token_form == "mean" or len(self.used_str_tokens) != 1:
            return None
        piece = self.used_str_tokens[0]
        if not piece.strip():
            return "a bare space"
        if len(piece.strip()) == 1:
            return "one character"
        return None


@dataclass
class MatrixStats:
    """Everything computed from one (wte, wpe) pair; `label` says which pair."""

    label: str  # "checkpoint" or "processed"
    source: str  # where the matrices came from, in words
    vocab_norms: list[float]  # (d_vocab,)
    position_norms: list[float] | None  # (n_ctx,); None without learned positions
    words: list[WordStats]  # parallel to Embeddings.words
    cosine: dict[str, list[list[float]]]  # group -> (n_words, n_words)
    cross_cosine: dict | None  # {"rows": "common", "columns": "rare", "matrix": (n_common, n_rare), "mean"}
    summary: dict
    vectors: object  # (n_words, d_model) float32 tensor, rows in Embeddings.words order


@dataclass
class Embeddings:
    """Ids, norms, neighbours, cosines and a PCA of the chosen words' vectors in one token form."""

    model: str
    meta: dict
    groups: dict[str, list[str]]
    words: list[Word]
    checkpoint: MatrixStats
    processed: MatrixStats | None = None
    top: int = 5  # nearest neighbours listed per word
    token_form: str = "space"
    pca: object = None  # VocabPCA of the checkpoint's wte
    word_coords: object = None  # (n_words, 2) the words' vectors in the PCA plane

    @property
    def summary(self) -> dict:
        return self.checkpoint.summary

    @property
    def vectors(self):
        """(n_words, d_model) the words' vectors from the checkpoint's wte, one row per `self.words` entry
        (groups in order)."""
        return self.checkpoint.vectors

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {len(ws)}" for g, ws in self.groups.items())
        return (
            f"Embeddings({self.model!r}; {groups} words; token form {self.token_form!r}; top {self.top} "
            f"neighbours{'; +processed' if self.processed else ''})"
        )

    @property
    def cosine(self) -> dict[str, list[list[float]]]:
        return self.checkpoint.cosine

    @property
    def cross_cosine(self) -> dict | None:
        return self.checkpoint.cross_cosine

    def stats(self, which: str = "checkpoint") -> MatrixStats:
        if which == "checkpoint":
            return self.checkpoint
        if which == "processed":
            if self.processed is None:
                raise ProbesError("no processed numbers: call probes.embeddings(..., processed=True)")
            return self.processed
        raise ProbesError(f"unknown matrix {which!r}; choose checkpoint or processed")

    def to_dataframe(self):
        """A pandas DataFrame, one row per word: its group, the tokens its vector is read from, its norm and
        norm percentile, its nearest tokens and their cosines, and its place in the PCA plane (checkpoint
        matrix; `processed_norm` too when computed). Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = []
        for k, w in enumerate(self.words):
            s = self.checkpoint.words[k]
            row = {
                "word": w.word,
                "group": w.group,
                "token_form": w.token_form,
                "used_str_tokens": list(w.used_str_tokens),
                "split": w.split,
                "weak_piece": w.weak_piece,
                "norm": s.norm,
                "norm_percentile": s.norm_percentile,
                "neighbours": [n.token for n in s.neighbours],
                "neighbour_cosines": [n.cosine for n in s.neighbours],
                "pca_x": float(self.word_coords[k][0]),
                "pca_y": float(self.word_coords[k][1]),
            }
            if self.processed is not None:
                row["processed_norm"] = self.processed.words[k].norm
            rows.append(row)
        return frame(rows)

    def as_dict(self, vectors: bool = False) -> dict:
        """The JSON shape of `probes embed --json`; `vectors=True` adds each word's vector (`--vectors`)."""
        from probes.studies.embeddings.forms import TOKEN_FORMS

        words = []
        for k, w in enumerate(self.words):
            entry = {
                "word": w.word,
                "group": w.group,
                "token_form": w.token_form,
                "ids": w.ids,
                "used_str_tokens": w.used_str_tokens,
                "split": w.split,
                "weak_piece": w.weak_piece,
                "token_ids": w.token_ids,
                "str_tokens": w.str_tokens,
                "space_token_ids": w.space_token_ids,
                "space_str_tokens": w.space_str_tokens,
                **self.checkpoint.words[k].as_dict(),
                "pca": [float(v) for v in self.word_coords[k]],
            }
            if vectors:
                entry["vector"] = self.checkpoint.vectors[k].tolist()
            if self.processed is not None:
                entry["processed"] = self.processed.words[k].as_dict()
                if vectors:
                    entry["processed"]["vector"] = self.processed.vectors[k].tolist()
            words.append(entry)
        out = {
            **self.meta,
            "source": self.checkpoint.source,
            "token_form": self.token_form,
            "token_form_means": TOKEN_FORMS[self.token_form],
            "groups": self.groups,
            "top": self.top,
            "words": words,
            "cosine": self.checkpoint.cosine,
            "cross_cosine": self.checkpoint.cross_cosine,
            "summary": self.checkpoint.summary,
            "position_norms": self.checkpoint.position_norms,
            "pca": {
                "of": "the checkpoint's wte, every row (centred)",
                "explained_variance": self.pca.explained,
            },
        }
        if self.processed is not None:
            out["processed"] = {
                "source": self.processed.source,
                "cosine": self.processed.cosine,
                "cross_cosine": self.processed.cross_cosine,
                "summary": self.processed.summary,
                "position_norms": self.processed.position_norms,
            }
        return out

    # Figures: the data lives here, the drawing in probes.plots.embedding.

    def _labels(self, group: str | None = None) -> list[str]:
        return [_label(w) for w in self.words if group is None or w.group == group]

    def _title(self, what: str, s: MatrixStats, matrix: str = "wte") -> str:
        return f"{model_label(self.model)}: {what} ({s.label} {matrix}; token form: {self.token_form})"

    def figure_norms(self, which: str = "checkpoint"):
        """Bars of each word's norm in the chosen form, beside another form's, the vocabulary median
        marked."""
        from probes.plots.embedding import norm_bars

        s = self.stats(which)
        other = "space" if self.token_form == "first" else "first"
        return norm_bars(
            labels=self._labels(),
            groups=[w.group for w in self.words],
            norms=[x.norm for x in s.words],
            other_norms=[x.form_norms[other] for x in s.words],
            form=self.token_form,
            other=other,
            median=s.summary["vocab"]["median_norm"],
            title=self._title("embedding norms", s),
        )

    def figure_cosine(self, which: str = "checkpoint"):
        """One heatmap of pairwise cosine similarity per group, and common x rare."""
        from probes.plots.embedding import cosine_heatmaps

        s = self.stats(which)
        mats = {g: (self._labels(g), self._labels(g), s.cosine[g]) for g in self.groups}
        if s.cross_cosine is not None:
            mats[f"common × rare (mean {show_number(s.cross_cosine['mean'], '.2f')})"] = (
                self._labels("common"),
                self._labels("rare"),
                s.cross_cosine["matrix"],
            )
        return cosine_heatmaps(mats, title=self._title("cosine similarity", s))

    def figure_scatter(self, which: str = "checkpoint"):
        """Whole-vocabulary norm against token id, the tokens the words' vectors are read from marked."""
        from probes.plots.embedding import norm_scatter

        s = self.stats(which)
        marks = [
            (i, s.vocab_norms[i], _label(w) if n == 0 else None, w.group)
            for w in self.words
            for n, i in enumerate(w.ids)
        ]
        return norm_scatter(
            s.vocab_norms,
            marks,
            median=s.summary["vocab"]["median_norm"],
            title=self._title("norm of every token's embedding", s),
        )

    def figure_pca(self):
        """The vocabulary's cloud in its first two principal components, the words' vectors marked (checkpoint
        wte)."""
        from probes.plots.embedding import pca_scatter

        points = [
            (float(x), float(y), _label(w), w.group)
            for (x, y), w in zip(self.word_coords.tolist(), self.words)
        ]
        return pca_scatter(
            self.pca.coords,
            points,
            self.pca.explained,
            title=self._title("the words among every token, PCA", self.checkpoint),
        )

    def figure_positions(self, which: str = "checkpoint"):
        """Norm of each position's embedding (wpe)."""
        from probes.plots.embedding import position_norms

        s = self.stats(which)
        if s.position_norms is None:
            raise ProbesError(f"{self.model} has no learned position embeddings (its positions are rotary)")
        return position_norms(
            s.position_norms, title=f"{model_label(self.model)}: position embedding norms ({s.label} wpe)"
        )


def _label(w: Word) -> str:
    """'dog (␣dog)': the word, and the token(s) its vector is read from when they are not the word itself."""
    word = show_token(w.word, 16, plot=True)
    if w.used_str_tokens == [w.word]:
        return word
    pieces = "+".join(show_token(t, plot=True) for t in w.used_str_tokens)
    return f"{word} ({pieces if len(pieces) <= 18 else pieces[:17] + '…'})"
