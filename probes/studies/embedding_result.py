"""Embedding results: the words as the tokenizer sees them, the statistics of one matrix, and their figures."""

from __future__ import annotations

from dataclasses import dataclass

from probes.errors import ProbesError
from probes.tokens import show_token


@dataclass
class Neighbour:
    token_id: int
    token: str
    cosine: float

    def as_dict(self) -> dict:
        return {"id": self.token_id, "token": self.token, "cosine": self.cosine}


@dataclass
class WordStats:
    """One matrix's numbers for one word: the id used, and its leading-space form's first id."""

    norm: float
    norm_percentile: float  # % of the vocabulary with a smaller norm
    neighbours: list[Neighbour]
    space_norm: float
    space_norm_percentile: float

    def as_dict(self) -> dict:
        return {
            "norm": self.norm, "norm_percentile": self.norm_percentile,
            "neighbours": [n.as_dict() for n in self.neighbours],
            "space_norm": self.space_norm, "space_norm_percentile": self.space_norm_percentile,
        }


@dataclass
class Word:
    """A word as the tokenizer sees it, alone and with a leading space."""

    word: str
    group: str
    token_ids: list[int]  # the word as given
    str_tokens: list[str]
    space_token_ids: list[int]  # " " + word: how GPT-2 usually meets it inside text
    space_str_tokens: list[str]

    @property
    def id(self) -> int:
        """The id used for the word's vector: its first token (the seed's convention)."""
        return self.token_ids[0]

    @property
    def split(self) -> bool:
        return len(self.token_ids) > 1

    @property
    def space_id(self) -> int:
        return self.space_token_ids[0]


@dataclass
class MatrixStats:
    """Everything computed from one (wte, wpe) pair; `label` says which pair."""

    label: str  # "checkpoint" or "processed"
    source: str  # where the matrices came from, in words
    vocab_norms: list[float]  # (d_vocab,)
    position_norms: list[float]  # (n_ctx,)
    words: list[WordStats]  # parallel to EmbeddingReport.words
    cosine: dict[str, list[list[float]]]  # group -> (n_words, n_words)
    summary: dict


@dataclass
class Embeddings:
    """Token ids, norms, neighbours and within-group cosines of the chosen words."""

    model: str
    meta: dict
    groups: dict[str, list[str]]
    words: list[Word]
    checkpoint: MatrixStats
    processed: MatrixStats | None = None
    top: int = 5  # nearest neighbours listed per word

    @property
    def summary(self) -> dict:
        return self.checkpoint.summary

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {len(ws)}" for g, ws in self.groups.items())
        return f"Embeddings({self.model!r}; {groups} words; top {self.top} neighbours{'; +processed' if self.processed else ''})"

    @property
    def cosine(self) -> dict[str, list[list[float]]]:
        return self.checkpoint.cosine

    def stats(self, which: str = "checkpoint") -> MatrixStats:
        if which == "checkpoint":
            return self.checkpoint
        if which == "processed":
            if self.processed is None:
                raise ProbesError("no processed numbers: call probes.embeddings(..., processed=True)")
            return self.processed
        raise ProbesError(f"unknown matrix {which!r}; choose checkpoint or processed")

    def as_dict(self) -> dict:
        """The JSON shape of `probes embed --json`."""
        words = []
        for k, w in enumerate(self.words):
            entry = {
                "word": w.word, "group": w.group, "token_ids": w.token_ids, "str_tokens": w.str_tokens, "id": w.id,
                "split": w.split, "space_token_ids": w.space_token_ids, "space_str_tokens": w.space_str_tokens,
                **self.checkpoint.words[k].as_dict(),
            }
            if self.processed is not None:
                entry["processed"] = self.processed.words[k].as_dict()
            words.append(entry)
        out = {
            **self.meta, "source": self.checkpoint.source, "groups": self.groups, "top": self.top,
            "words": words, "cosine": self.checkpoint.cosine, "summary": self.checkpoint.summary,
            "position_norms": self.checkpoint.position_norms,
        }
        if self.processed is not None:
            out["processed"] = {
                "source": self.processed.source, "cosine": self.processed.cosine,
                "summary": self.processed.summary, "position_norms": self.processed.position_norms,
            }
        return out

    # Figures: the data lives here, the drawing in probes.plots.embedding.

    def _labels(self, group: str | None = None) -> list[str]:
        return [_label(w) for w in self.words if group is None or w.group == group]

    def figure_norms(self, which: str = "checkpoint"):
        """Bars of each word's norm (as given and with a leading space), the vocabulary median marked."""
        from probes.plots.embedding import norm_bars

        s = self.stats(which)
        return norm_bars(
            labels=self._labels(), groups=[w.group for w in self.words], norms=[x.norm for x in s.words],
            space_norms=[x.space_norm for x in s.words], median=s.summary["vocab"]["median_norm"],
            title=f"{self.model}: embedding norms ({s.label} wte)",
        )

    def figure_cosine(self, which: str = "checkpoint"):
        """One heatmap of pairwise cosine similarity per group."""
        from probes.plots.embedding import cosine_heatmaps

        s = self.stats(which)
        mats = {g: (self._labels(g), s.cosine[g]) for g in self.groups}
        return cosine_heatmaps(mats, title=f"{self.model}: cosine similarity within each group ({s.label} wte)")

    def figure_scatter(self, which: str = "checkpoint"):
        """Whole-vocabulary norm against token id, the chosen words' ids marked."""
        from probes.plots.embedding import norm_scatter

        s = self.stats(which)
        marks = [(w.id, s.words[k].norm, _label(w), w.group) for k, w in enumerate(self.words)]
        return norm_scatter(
            s.vocab_norms, marks, median=s.summary["vocab"]["median_norm"],
            title=f"{self.model}: norm of every token's embedding ({s.label} wte)",
        )

    def figure_positions(self, which: str = "checkpoint"):
        """Norm of each position's embedding (wpe)."""
        from probes.plots.embedding import position_norms

        s = self.stats(which)
        return position_norms(s.position_norms, title=f"{self.model}: position embedding norms ({s.label} wpe)")


def _label(w: Word) -> str:
    word = show_token(w.word, plot=True)
    return f"{word} ({show_token(w.str_tokens[0], plot=True)})" if w.split else word
