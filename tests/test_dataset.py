"""Datasets: reading texts (lines, paragraphs, JSON Lines, saved datasets), errors with file:line, windows and
batches."""

from __future__ import annotations

import json

import pytest
import torch

from probes.core.dataset import Dataset, DatasetError
from probes.core.windows import batches, cut, windows


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_lines_skip_blank_lines_and_say_where_each_text_is(tmp_path):
    f = write(tmp_path / "t.txt", "first text\n\n  \nsecond text\nthird\n")
    texts = list(Dataset(f"FILE:{f}"))
    assert [t.text for t in texts] == ["first text", "second text", "third"]
    assert [t.index for t in texts] == [0, 1, 2]
    assert [t.where for t in texts] == [f"{f}:1", f"{f}:4", f"{f}:5"]
    assert len(Dataset(str(f))) == 3


def test_paragraphs_are_separated_by_blank_lines(tmp_path):
    f = write(tmp_path / "t.txt", "a b\nc d\n\n\ne f\n")
    texts = list(Dataset(f, split="paragraphs"))
    assert [t.text for t in texts] == ["a b\nc d", "e f"]
    assert [t.where.rsplit(":", 1)[1] for t in texts] == ["1", "5"]


def test_jsonl_reads_the_text_field(tmp_path):
    f = write(
        tmp_path / "t.jsonl",
        json.dumps({"text": "one", "id": 1}) + "\n\n" + json.dumps({"text": "two\nlines"}) + "\n",
    )
    assert [t.text for t in Dataset(f)] == ["one", "two\nlines"]


def test_max_texts_stops_early(tmp_path):
    f = write(tmp_path / "t.txt", "".join(f"text {i}\n" for i in range(10)))
    assert [t.text for t in Dataset(f, max_texts=3)] == ["text 0", "text 1", "text 2"]
    assert Dataset(f, max_texts=3).check() == 3


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", "\n\n  \n", "holds no texts"),
        ("bad.jsonl", '{"text": "ok"}\n{"body": "no text"}\n', ":2: the line has no 'text' field"),
        ("bad2.jsonl", '{"text": "ok"}\n\n{"text": \n', ":3: not valid JSON .*column 10"),
        ("bad3.jsonl", '{"text": ""}\n', ":1: 'text' must be a non-empty string"),
        ("latin1.txt", b"ok\ncaf\xe9\n", ":2: not UTF-8 text .*byte 4 of the line"),
    ],
)
def test_bad_datasets_name_the_file_and_line(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError, match=message) as e:
        Dataset(f).check()
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_a_byte_order_mark_and_windows_line_endings_are_not_text(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfROMEO: hi\r\nsecond\r\n")  # as Notepad saves UTF-8
    assert [t.text for t in Dataset(f)] == ["ROMEO: hi", "second"]
    j = tmp_path / "bom.jsonl"
    j.write_bytes(b'\xef\xbb\xbf{"text": "one"}\r\n')
    assert [t.text for t in Dataset(j)] == ["one"]


def test_split_paragraphs_is_refused_where_it_means_nothing(tmp_path):
    j = write(tmp_path / "t.jsonl", '{"text": "one"}\n')
    with pytest.raises(DatasetError, match="split 'paragraphs' is for text files; .*t.jsonl"):
        Dataset(j, split="paragraphs")
    with pytest.raises(DatasetError, match="split must be one of"):
        Dataset(j, split="sentences")


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match="cannot read dataset .*missing.txt"):
        Dataset(tmp_path / "missing.txt").check()


def test_a_dataset_saved_to_disk_is_read_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["alpha", "beta gamma"], "label": [0, 1]}).save_to_disk(
        tmp_path / "d"
    )
    assert [t.text for t in Dataset(tmp_path / "d")] == ["alpha", "beta gamma"]
    datasets.Dataset.from_dict({"body": ["x"]}).save_to_disk(tmp_path / "e")
    with pytest.raises(DatasetError, match="no 'text' column"):
        Dataset(tmp_path / "e").check()
    with pytest.raises(DatasetError, match="holds one dataset, not splits"):
        Dataset(f"{tmp_path / 'd'}:test").check()
    # A saved DatasetDict: train by default, DIR:split for another; where each text is names the split.
    splits = {
        "train": datasets.Dataset.from_dict({"text": ["a", "b"]}),
        "test": datasets.Dataset.from_dict({"text": ["t"]}),
    }
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "dd")
    assert [t.text for t in Dataset(tmp_path / "dd")] == ["a", "b"]
    test = list(Dataset(Dataset(f"FILE:{tmp_path / 'dd'}:test")))  # a Dataset of a Dataset keeps the split
    assert [t.text for t in test] == ["t"] and test[0].where == f"{tmp_path / 'dd'} (test split): row 0"
    with pytest.raises(DatasetError, match="no split 'dev' \\(splits: train, test\\)"):
        Dataset(f"{tmp_path / 'dd'}:dev").check()
    datasets.Dataset.from_dict({"text": [3]}).save_to_disk(tmp_path / "ints")
    with pytest.raises(DatasetError, match="row 0's 'text' is not text \\(int\\)"):
        Dataset(tmp_path / "ints").check()


def test_cut_covers_every_token_once():
    ids = list(range(10, 30))
    parts = cut(ids, 8, bos=0)
    assert all(w[0] == 0 and len(w) <= 8 for _, w in parts)
    assert [t for _, w in parts for t in w[1:]] == ids
    assert [s for s, _ in parts] == [0, 7, 14]
    assert [t for _, w in cut(ids, 8, None) for t in w] == ids


def test_windows_cover_long_texts_and_refuse_empty_ones(tiny):
    long = " ".join(f"word{i}" for i in range(200))
    ws = list(windows(tiny, Dataset(["short text", long])))
    ids = tiny.tokenizer(long, add_special_tokens=False)["input_ids"]
    assert ws[0].text == 0 and ws[0].start == 0
    later = [w for w in ws if w.text == 1]
    assert len(later) > 1 and all(len(w.ids) <= tiny.cfg.n_ctx for w in ws)
    assert [t for w in later for t in w.ids[1:]] == ids
    blank = Dataset(
        [" "]
    )  # a space is a token; an empty text never reaches the tokenizer (the list refuses it)
    assert next(iter(windows(tiny, blank))).ids[1:]
    with pytest.raises(DatasetError, match="text 0 of the list is empty"):
        list(windows(tiny, Dataset([""])))


def test_right_padded_batches_give_each_window_its_own_logits(tiny):
    data = Dataset(["a b c d e f g h i j", "x", "the quick brown fox jumps"])
    got = {}
    for batch in batches(tiny, windows(tiny, data), max_tokens=64, max_rows=2):
        logits = tiny(batch.ids)  # (batch, pos, vocab)
        for r, w in enumerate(batch.windows):
            got[w.text] = logits[r, : len(w.ids)]
            assert batch.mask[r].sum() == len(w.ids)
    for w in windows(tiny, data):
        alone = tiny(torch.tensor([w.ids], device=tiny.cfg.device))[0]
        torch.testing.assert_close(got[w.text], alone, atol=1e-4, rtol=1e-4)


def test_batches_respect_their_limits(tiny):
    data = Dataset([f"text number {i} " * (i + 1) for i in range(20)])
    for batch in batches(tiny, windows(tiny, data), max_tokens=200, max_rows=3):
        assert batch.ids.shape[0] <= 3
        assert batch.ids.numel() <= 200 or batch.ids.shape[0] == 1
