"""Token ids to token strings: pieces of a UTF-8 character read as their bytes, and streamed text adds up."""

from types import SimpleNamespace

import numpy as np
import pytest

from probes.core.prompt import TextStream, token_strings
from probes.studies.lens.readout import top_strings
from probes.tokens import show_token

TEXT = "I ❤ 東京 café 🎉 \ufffd ok"


@pytest.fixture(scope="module")
def gpt2_tok():
    from conftest import gpt2_tokenizer

    return gpt2_tokenizer()


def test_pieces_of_a_character_read_as_their_bytes(gpt2_tok):
    ids = gpt2_tok.encode(TEXT)
    got = token_strings(gpt2_tok, ids)
    alone = [gpt2_tok.decode([i]) for i in ids]
    for i, (text, plain) in enumerate(zip(got, alone)):
        raw = _bytes_of(gpt2_tok, i, ids)
        if not _is_utf8(raw):
            # A piece: each byte as \xNN (a leading space stays a space), and nothing lost.
            assert "\ufffd" in plain and "\ufffd" not in text and "\\x" in text, (plain, text)
            assert text.encode().decode("unicode_escape").encode("latin-1") == raw
        else:
            assert text == plain  # whole characters (' café', the real U+FFFD) as the tokenizer gives them
    pieces = [t for t, p in zip(got, alone) if "\ufffd" in p and t != p]
    assert len(pieces) >= 8 and len(set(pieces)) == len(pieces)  # distinct pieces read differently
    assert " \\xe2\\x9d" in got and "\\xa4" in got  # ' ❤' is two tokens
    assert show_token(" \\xe2\\x9d") == "␣\\xe2\\x9d"
    # The lens's top-token strings go through the same decoding.
    model = SimpleNamespace(tokenizer=gpt2_tok)
    grid = np.array(ids).reshape(1, -1)
    assert top_strings(model, grid).tolist() == [got]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bytes_of(tok, i, ids):
    from probes.core.prompt import _token_bytes

    return _token_bytes(tok, [ids[i]])[0]


def test_streamed_text_adds_up_to_the_decoded_text(gpt2_tok):
    ids = gpt2_tok.encode(TEXT)
    stream = TextStream(gpt2_tok)
    pieces = [stream.add(0, i) for i in ids]
    assert "".join(pieces) == gpt2_tok.decode(ids) == TEXT
    assert not any("\ufffd" in p for p in pieces[:-2])  # characters come out whole (the real U+FFFD aside)
    assert " ❤" in pieces and " 🎉" in pieces
    # Rows are independent: a character half-done in one row does not hold back another.
    stream = TextStream(gpt2_tok)
    first, second = gpt2_tok.encode(" ❤"), gpt2_tok.encode(" ok")
    assert (
        stream.add(0, first[0]) == ""
        and stream.add(1, second[0]) == " ok"
        and stream.add(0, first[1]) == " ❤"
    )


def test_a_tokenizer_that_is_not_byte_level_is_left_as_it_is(bundled):
    ids = bundled.tokenizer.encode("ROMEO: ❤", add_special_tokens=False)
    assert "".join(token_strings(bundled.tokenizer, ids)).startswith("ROMEO:")
    plain = SimpleNamespace(
        decode=lambda ids: "\ufffd" * len(ids),
        batch_decode=lambda b: ["\ufffd" for _ in b],
        convert_ids_to_tokens=lambda ids: ["<unk>" for _ in ids],
    )
    assert token_strings(plain, [5, 6]) == ["\ufffd", "\ufffd"]  # no byte table for it: unchanged
    stream = TextStream(plain)
    assert stream.add(0, 5) == "\ufffd"  # and nothing held back
