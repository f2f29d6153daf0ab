"""Datasets: many texts from a file (one per line, blank-line paragraphs, JSON Lines) or a Hugging Face
dataset.

    data = Dataset.of("FILE:texts.txt")          # or a path, a list of strings, "HF:name[:split]"
    data.check()                                 # torch-free: counts texts, one-line errors with file:line
    for text in data: text.index, text.where, text.text

Texts are read lazily, one at a time, so a study over a dataset holds only the batch it computes. A
streamed Hub dataset can also be read one data source at a time (`Stream`), which is how ranks split it
(`probes.core.shares`).
The module imports no torch: the CLI checks a dataset before the model loads.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass

from probes.core import distributed
from probes.errors import ProbesError
from probes.io import check_regular
from probes.jsonread import parse_json

SPLITS = ("lines", "paragraphs")
# The longest text read: a text is tokenized whole (some 250,000 tokens here), so memory holds it, its
# tokens and its windows at once. Longer texts are refused, not read: split them into lines or paragraphs.
MAX_TEXT_BYTES = 1 << 20
TEXT_FIELD = "text"


class DatasetError(ProbesError):
    """A dataset that cannot be read: it names the file and the line."""


def _check_unicode(where: str, text: str) -> None:
    """Refuse a text holding a lone surrogate (JSON's `"\\ud800"`): a str, but not Unicode text, so no
    tokenizer reads it."""
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DatasetError(
                f"{where}: the text holds a lone surrogate (U+{ord(text[e.start]):04X} at character "
                f"{e.start + 1}), which is not Unicode text"
            ) from None


def _too_long(where: str, what: str) -> str:
    return (
        f"{where}: the {what} is longer than {MAX_TEXT_BYTES >> 20} MiB; a text is read whole, so split it "
        "into lines (or paragraphs, --split paragraphs)"
    )


def check_context(n_ctx: int, *, bos: bool = True, score: bool = True) -> None:
    """Refuse a context too small to cut texts into windows, checked from config.json before a load.

    A window holds BOS (when `bos`) and at least one text token; to be scored it needs two positions,
    one to predict the next from.
    """
    need = 2 if score else 1 + bool(bos)
    if n_ctx < need:
        what = (
            "score texts (a window needs a token and the next one it predicts)"
            if score
            else ("hold BOS and a text token in a window")
        )
        raise ProbesError(
            f"the model's context is {n_ctx} position{'s' if n_ctx != 1 else ''} (n_positions in its "
            f"config.json), too small to {what}; use a model with a context of {need} or more"
        )


@dataclass(frozen=True)
class Text:
    """One text of a dataset: its number (from 0), where it came from (`file:line`), and the text."""

    index: int
    where: str
    text: str


class Dataset:
    """Texts from one source, read lazily.

    A `.txt` (or any non-JSON) file holds one text per line with `split="lines"` (blank lines are
    skipped), or texts separated by blank lines with `split="paragraphs"` (lines inside a paragraph
    keep their newlines). A `.jsonl` file holds one JSON object per line with a `text` field. A
    directory saved by `datasets.Dataset.save_to_disk` (`DIR:split` picks a split of a saved
    DatasetDict; the default is `train`), or `HF:name[:split]`, is read with the optional
    `datasets` package (column `text`). `max_texts` stops after that many texts.

    `streaming` (HF: only) reads the texts as they arrive, never the whole corpus to disk: a corpus
    larger than the disk can be read. Its length is then unknown until it has been read, and
    `check()` reads only its first text.
    """

    def __init__(
        self, source, *, split: str | None = "lines", max_texts: int | None = None, streaming: bool = False
    ):
        split = split or "lines"
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if max_texts is not None and (
            isinstance(max_texts, bool) or not isinstance(max_texts, int) or max_texts < 1
        ):
            raise DatasetError(f"max-texts must be an integer >= 1, got {max_texts!r}")
        self.split, self.max_texts, self.streaming = split, max_texts, bool(streaming)
        self._count: int | None = None
        self.part: str | None = None  # the split of a saved DatasetDict (DIR:split)
        if isinstance(source, Dataset):
            self.streaming = self.streaming or source.streaming
            source = source.spec
        self.spec = source
        if self.streaming and not (isinstance(source, str) and source.startswith("HF:")):
            raise DatasetError(
                "streaming reads a Hugging Face Hub dataset (HF:name); a local file is read as it is"
            )
        if isinstance(source, (list, tuple)):
            if not all(isinstance(t, str) for t in source):
                raise DatasetError("a list of texts must hold strings only")
            self.source, self.kind, self.name = list(source), "list", "the text list"
            return
        if not isinstance(source, (str, os.PathLike)):
            raise DatasetError(
                f"a dataset is a file, a directory, HF:name or a list of strings, not {type(source).__name__}"
            )
        text = os.fspath(source)
        if text.startswith("HF:"):
            self.source, self.kind, self.name = text[3:], "hub", text
            if not self.source:
                raise DatasetError("HF: needs a dataset name, as in HF:wikitext or HF:name:split")
            return
        from probes.io import user_path

        path = user_path(text.removeprefix("FILE:"))
        self.source, self.name = path, str(path)
        folder, colon, part = str(path).rpartition(":")
        if not path.exists() and colon and part and os.path.isdir(folder):  # DIR:split of a saved DatasetDict
            self.source, self.part = user_path(folder), part
        if self.source.is_dir():
            self.kind = "disk"
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            self.kind = "jsonl"
        else:
            self.kind = "text"
        if split != "lines" and self.kind != "text":
            raise DatasetError(
                f"split {split!r} is for text files; {self.name} holds one text per "
                f"{'row' if self.kind == 'disk' else 'line'} already"
            )

    @classmethod
    def of(cls, source, **kwargs) -> Dataset:
        """`source` as a Dataset (a Dataset is returned as it is when no options are given)."""
        if isinstance(source, Dataset) and not kwargs:
            return source
        return cls(source, **kwargs)

    def __repr__(self) -> str:
        n = f", {self._count} texts" if self._count is not None else ""
        return f"Dataset({self.name!r}, {self.kind}{n})"

    def as_dict(self) -> dict:
        return {
            "source": self.name,
            "kind": self.kind,
            "split": self.split,
            "max_texts": self.max_texts,
            "texts": self._count,
        }

    def check(self) -> int | None:
        """Read the whole dataset once and return how many texts it holds; raise on any bad line.

        Torch-free and quick (a few MB/s at worst), so commands call it before loading a model. A
        streamed dataset is opened and its first text read (None: its length is unknown); under torchrun, the
        first text of this rank's first data source (`core/shares.py`).
        """
        if self.streaming:
            if Stream(self).first() is None:
                raise DatasetError(f"{self.name}: the dataset holds no texts")
            return None
        n = sum(1 for _ in self)
        if n == 0:
            raise DatasetError(f"{self.name}: the dataset holds no texts")
        self._count = n
        return n

    def __len__(self) -> int:
        if self.streaming:
            raise TypeError(f"{self.name} is streamed: its length is unknown until it has been read")
        return self._count if self._count is not None else self.check()

    def __iter__(self) -> Iterator[Text]:
        raw = {
            "list": self._from_list,
            "text": self._from_text,
            "jsonl": self._from_jsonl,
            "disk": self._from_datasets,
            "hub": self._from_datasets,
        }[self.kind]()
        for i, (where, text) in enumerate(raw):
            if self.max_texts is not None and i >= self.max_texts:
                return
            yield checked_text(i, where, text)

    # Each reader yields (where, text) in order.

    def _from_list(self) -> Iterator[tuple[str, str]]:
        for i, text in enumerate(self.source):
            if not text:
                raise DatasetError(f"text {i} of the list is empty")
            yield f"text {i}", text

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line) without its line ending; a UTF-8 byte-order mark (Windows editors write one) is
        dropped.

        Only a regular file is read: a dataset is read twice (checked, then used), and a pipe or a FIFO
        gives its texts once (or blocks for good), a device such as /dev/zero never ends. A line is
        read up to MAX_TEXT_BYTES: a longer one is an error naming it, never read whole into memory.
        """
        try:
            try:
                check_regular(self.source, "the dataset")
            except ProbesError as e:
                raise DatasetError(str(e)) from None
            with open(self.source, "rb") as fh:
                for no, raw in enumerate(iter(lambda: fh.readline(MAX_TEXT_BYTES + 2), b""), 1):
                    if len(raw.rstrip(b"\r\n")) > MAX_TEXT_BYTES:
                        raise DatasetError(_too_long(f"{self.name}:{no}", "line"))
                    if no == 1:
                        raw = raw.removeprefix(codecs.BOM_UTF8)
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise DatasetError(
                            f"{self.name}:{no}: not UTF-8 text ({e.reason} at byte {e.start + 1} of the line)"
                        ) from None
                    yield no, line.rstrip("\r\n")
        except OSError as e:
            raise DatasetError(f"cannot read dataset {self.name}: {e.strerror or e}") from None

    def _from_text(self) -> Iterator[tuple[str, str]]:
        if self.split == "lines":
            for no, line in self._lines():
                if line.strip():
                    yield f"{self.name}:{no}", line
            return
        para, first, size = [], 0, 0
        for no, line in self._lines():
            if line.strip():
                if not para:
                    first, size = no, 0
                para.append(line)
                size += len(line) + 1
                if size > MAX_TEXT_BYTES:  # characters: at most as many as bytes
                    raise DatasetError(_too_long(f"{self.name}:{first}", "paragraph"))
            elif para:
                yield f"{self.name}:{first}", "\n".join(para)
                para = []
        if para:
            yield f"{self.name}:{first}", "\n".join(para)

    def _from_jsonl(self) -> Iterator[tuple[str, str]]:
        for no, line in self._lines():
            if not line.strip():
                continue
            where = f"{self.name}:{no}"
            row = parse_json(line, where, error=DatasetError)
            if not isinstance(row, dict) or TEXT_FIELD not in row:
                raise DatasetError(f"{where}: the line has no {TEXT_FIELD!r} field")
            text = row[TEXT_FIELD]
            if not isinstance(text, str) or not text:
                raise DatasetError(f"{where}: {TEXT_FIELD!r} must be a non-empty string")
            yield where, text

    def opened(self):
        """(the `datasets` object, the name its rows go by) of a saved or Hub dataset: an IterableDataset when
        streamed."""
        try:
            import datasets
        except ImportError:
            raise DatasetError(
                f"{self.name}: reading a Hugging Face dataset needs `pip install datasets`"
            ) from None
        try:
            if self.kind == "disk":
                data = datasets.load_from_disk(str(self.source))
            else:
                name, _, split = self.source.partition(":")
                data = datasets.load_dataset(name, split=split or "train", streaming=self.streaming)
        except Exception as e:  # noqa: BLE001 -- offline, no such dataset, not a dataset folder: one message
            cause = str(e).strip().split(". ")[0] or type(e).__name__
            raise DatasetError(f"cannot open dataset {self.name}: {cause}") from None
        name = self.name
        part = self.part
        if isinstance(data, datasets.DatasetDict):
            if part is not None and part not in data:
                raise DatasetError(f"{self.name}: no split {part!r} (splits: {', '.join(data)})")
            part = part or ("train" if "train" in data else next(iter(data)))
            data, name = data[part], f"{self.source} ({part} split)"
        elif part is not None:
            raise DatasetError(f"{self.name}: {self.source} holds one dataset, not splits to choose from")
        columns = data.column_names  # None for a stream whose features are not declared
        if columns is not None and TEXT_FIELD not in columns:
            raise DatasetError(f"{name}: no {TEXT_FIELD!r} column (columns: {', '.join(columns)})")
        return data, name

    def _from_datasets(self) -> Iterator[tuple[str, str]]:
        data, name = self.opened()
        if self.streaming:
            yield from streamed_rows(data, lambda i: f"{name}: row {i}")
            return
        texts = data[TEXT_FIELD] if len(data) < 10_000 else (r[TEXT_FIELD] for r in data)
        for i, text in enumerate(texts):
            yield f"{name}: row {i}", _row_text(text, f"{name}: row {i}")


def streamed_rows(rows, where_of) -> Iterator[tuple[str, str]]:
    """(where, text) of each row of a stream, `where_of(i)` naming its i-th row."""
    for i, row in enumerate(rows):
        where = where_of(i)
        if not isinstance(row, dict) or TEXT_FIELD not in row:
            raise DatasetError(f"{where} has no {TEXT_FIELD!r} field")
        yield where, _row_text(row[TEXT_FIELD], where)


def _row_text(text, where: str) -> str:
    if not isinstance(text, str):
        raise DatasetError(f"{where}'s {TEXT_FIELD!r} is not text ({type(text).__name__})")
    if not text:
        raise DatasetError(f"{where} has an empty {TEXT_FIELD!r}")
    return text


def checked_text(i: int, where: str, text: str) -> Text:
    """Text number `i`, refused in one line if too long or not Unicode."""
    if isinstance(text, str) and len(text) > MAX_TEXT_BYTES:
        raise DatasetError(_too_long(where, "text"))
    _check_unicode(where, text)
    return Text(i, where, text)


class Stream:
    """A streamed Hub dataset, read whole or source by source.

    `source(s)` reads data source s alone; `sources()` every source in order, which is the order the
    whole stream is read in. A text's `index` is its number within its source; its `where` names the
    one-process row when the rows before it are known (`first`), else the source and the row in it.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.data, self.name = dataset.opened()
        self.n_sources = max(1, int(getattr(self.data, "n_shards", 1) or 1))

    def where(self, k: int) -> str:
        """The one-process name of text k."""
        return f"{self.name}: row {k}"

    def source(self, s: int, first: int | None = None, *, own: bool = False) -> Iterator[Text]:
        """Texts of data source `s`, numbered from 0 within it; `first`: the one-process number of its first
        text, when known. `own`: this rank alone reads the source, so a bad text is its own error to print
        (`distributed.own`), not one every rank raises alike."""
        try:
            yield from self._source(s, first)
        except DatasetError as e:
            raise distributed.own(e) if own else e from None

    def _source(self, s: int, first: int | None) -> Iterator[Text]:
        rows = self.data if self.n_sources == 1 else self.data.shard(num_shards=self.n_sources, index=s)

        def where(j: int) -> str:
            if first is not None:
                return self.where(first + j)
            return f"{self.name}: source {s + 1} of {self.n_sources}, row {j}"

        for j, (at, text) in enumerate(streamed_rows(rows, where)):
            yield checked_text(j, at, text)

    def sources(self) -> Iterator[tuple[int, Iterator[Text]]]:
        """(s, its texts) for every source in order, the dataset's `max_texts` in all at most: the sources
        past that give none (and are not opened), so every source is accounted for.

        Each source's texts must be read before the next source is asked for."""
        left = self.dataset.max_texts
        seen = 0
        for s in range(self.n_sources):

            def capped(s=s):
                nonlocal seen
                if left is not None and seen >= left:
                    return
                for text in self.source(s, first=seen):
                    if left is not None and seen >= left:
                        return
                    seen += 1
                    yield text

            yield s, capped()

    def first(self) -> Text | None:
        """The first text of the stream this rank reads (in its first data source), or None if the stream is
        empty.

        Commands check a dataset before the model loads, so before the ranks have joined: torchrun's
        variables say which rank this is."""
        rank, ranks = distributed.rank(), distributed.size()
        if ranks == 1 and distributed.launched():
            rank, ranks = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        own = ranks > 1 and self.n_sources >= ranks and self.dataset.max_texts is None
        mine = next(self.source(rank), None) if own else None
        # no text in its own source: the rank reads on until it finds one, or finds the whole stream empty
        return mine or next((t for _, texts in self.sources() for t in texts), None)


def dataset_of(data, *, split: str | None = None, max_texts: int | None = None) -> Dataset:
    """The one way in for data: `data` as a Dataset, for every function that takes many texts.

    `data` is a Dataset (returned as it is unless `split` or `max_texts` are given; then re-read
    with those, its own split kept where `split` is None), a list of strings (the texts), or a string
    or path naming a source: a file, a saved dataset folder, `FILE:path` or `HF:name[:split]`. A
    string is never one text: put one text in a list.
    """
    if isinstance(data, Dataset):
        if split is None and max_texts is None:
            return data
        return Dataset(
            data.spec,
            split=split or data.split,
            max_texts=max_texts or data.max_texts,
            streaming=data.streaming,
        )
    return Dataset(data, split=split, max_texts=max_texts)
