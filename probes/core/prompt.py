"""Prompts: the one encoder from what a user gives (text, `FILE:path`, token ids) to the ids fed to the
model."""

from __future__ import annotations

import functools
import os
import warnings

from probes.errors import ProbesError, SpecError


class ProbesWarning(UserWarning):
    """Something the user should know about, printed on stderr by the CLI."""


# A prompt keeps at most the context's last tokens (1,024 for GPT-2), so a huge FILE: prompt is
# read from its end: this many bytes hold far more tokens than any GPT-2 context.
TAIL_BYTES = 1 << 20


def read_prompt(text: str | None) -> str:
    """The prompt itself; `FILE:path` reads it from a file, as nanoGPT's sample.py does.

    A file over TAIL_BYTES is read from its last TAIL_BYTES bytes only (with a warning), since
    only the prompt's last n_ctx tokens are fed anyway.
    """
    from probes.io import check_regular, user_path

    if text is None:
        raise ProbesError("no prompt given")
    if text.startswith("FILE:"):
        path = user_path(text[5:])
        check_regular(path, "the prompt file")
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - TAIL_BYTES))
                data = fh.read()
            if size > TAIL_BYTES:
                warnings.warn(
                    f"the prompt file {str(path)!r} has {size / 2**20:.0f} MiB; reading its last "
                    f"{TAIL_BYTES >> 20} MiB (only the last tokens fit the context)",
                    ProbesWarning,
                    stacklevel=2,
                )
                data = data[
                    next((i for i, b in enumerate(data[:4]) if b & 0xC0 != 0x80), 0) :
                ]  # no half character
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ProbesError(
                f"cannot read prompt file {str(path)!r}: {getattr(e, 'strerror', None) or e}"
            ) from None
    return as_text(text, "the prompt", "give it as UTF-8 or with FILE:path")


def as_text(text: str, what: str, hint: str = "give it as UTF-8") -> str:
    """`text` as Unicode, or a ProbesError saying that `what` is not text.

    Bytes that Python could not decode from the command line arrive as lone surrogates
    (`surrogateescape`). Under the C locale without UTF-8 mode that is every UTF-8 character, so
    they are read again as UTF-8; only bytes that are not UTF-8 either are refused.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError as e:
        at = e.start
    try:
        return os.fsencode(text).decode("utf-8")
    except UnicodeError:
        raise ProbesError(f"{what} holds bytes that are not UTF-8 text (at character {at}); {hint}") from None


def encode(model, prompt: str, *, bos: bool = True, max_len: int | None = None) -> list[int]:
    """Token ids fed to the model: BOS (`<|endoftext|>`) first if `bos`, cropped from the left.

    A prompt longer than the context keeps its last `n_ctx` tokens (nanoGPT's crop) with a warning.
    """
    return _encoded(model, prompt, bos, max_len)[0]


def _encoded(model, prompt: str, bos: bool, max_len: int | None = None) -> tuple[list[int], int]:
    """(`encode`'s ids, how many tokens the crop cut)."""
    ids = list(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if bos:
        ids = [bos_id(model)] + ids
    if not ids:
        raise ProbesError("the prompt is empty; give some text, or keep the BOS token (bos=True)")
    limit = max_len or model.cfg.n_ctx
    if len(ids) > limit:
        warnings.warn(
            f"the prompt has {len(ids)} tokens, more than the context of {limit}; keeping the last {limit} "
            f"(cutting {len(ids) - limit})",
            ProbesWarning,
            stacklevel=3,
        )
        return ids[-limit:], len(ids) - limit
    return ids, 0


class PlainText(str):
    """A prompt that is text as it stands, never a `FILE:` spec: a dataset's texts are passed on as these."""


def is_many(prompt) -> bool:
    """A list of prompts (strings, token-id lists) or a Dataset, rather than one prompt (text or ids)."""
    from probes.core.dataset import Dataset

    if isinstance(prompt, Dataset):
        return True
    return (
        isinstance(prompt, (list, tuple))
        and bool(prompt)
        and all(isinstance(p, (str, list, tuple)) for p in prompt)
    )


def prompts_of(prompt) -> list:
    """The prompts of a list, or a Dataset's texts as PlainText, in order; one prompt as a list of one."""
    from probes.core.dataset import Dataset

    if isinstance(prompt, Dataset):
        return [PlainText(t.text) for t in prompt]
    return list(prompt) if is_many(prompt) else [prompt]


def per_prompt(study, model, prompts, *, bos: bool = True, progress=None) -> list:
    """`study(p)` for each prompt of a list or each text of a Dataset: the results in order.

    Each result carries its prompt's text (`.prompt`), and its place in the list is the prompt's
    (for a Dataset, the text's `index`). Every prompt is checked first (read and encoded, BOS
    first if `bos`), so a bad one fails at once rather than after minutes of work. `progress`: as
    `probes.progress.progress_of` takes it (None: a bar where a person watches).
    """
    from probes.progress import progress_of

    items = prompts_of(prompts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cropped prompt is reported when its study encodes it
        for p in items:
            prompt_ids(model, p, bos=bos)
    results = []
    with progress_of(progress).task("prompts", total=len(items), unit="prompts") as task:
        for p in items:
            results.append(study(p))
            task.advance()
    return results


ACCEPTED = (
    "a prompt is text (or FILE:path), token ids (a list of ints, or an integer tensor), or a list of prompts"
)


def _token_id(item) -> bool:
    """An int (numpy's too) that is not a bool: True and 1.7 are not token ids, though int() takes them."""
    import numbers

    return isinstance(item, numbers.Integral) and not isinstance(item, bool)


def _integer_dtype(dtype) -> bool:
    """A torch or numpy integer dtype (not bool, float or complex), told apart without importing torch."""
    if hasattr(dtype, "kind"):  # numpy
        return dtype.kind in "iu"
    return not (dtype.is_floating_point or dtype.is_complex) and str(dtype) != "torch.bool"


def prompt_ids(model, prompt, *, bos: bool = True) -> tuple[str, list[int]]:
    """(text, token ids) for a prompt given as text (`FILE:path` reads a file) or as token ids.

    Text is encoded by `encode` (BOS first if `bos`, cropped from the left to the context); a
    PlainText is never read as `FILE:path`. Token ids (a list or a tensor) are fed exactly as
    given, so they must fit the context and the vocabulary; their text is their decoding. Anything else
    (floats, bools, bytes) is refused rather than read as ids.
    """
    if isinstance(prompt, PlainText) or isinstance(prompt, str) or prompt is None:
        text = str(prompt) if isinstance(prompt, PlainText) else read_prompt(prompt)
        ids, cut = _encoded(model, text, bos)
        if cut:  # the text becomes what the model reads: a header shows what is used (the warning says
            return model.tokenizer.decode(ids), ids  # how much was cut), never the whole of a long file
        return text, ids
    if hasattr(prompt, "reshape") and hasattr(prompt, "dtype"):  # a tensor or an array: one sequence
        if not _integer_dtype(prompt.dtype):
            raise SpecError(f"{ACCEPTED}; got a tensor of {str(prompt.dtype).removeprefix('torch.')}")
        if len(prompt.shape) > 2 or (len(prompt.shape) == 2 and prompt.shape[0] != 1):
            raise SpecError(
                f"token ids of shape {tuple(prompt.shape)}: give one sequence, (pos,) or (1, pos)"
            )
        ids = [int(i) for i in prompt.reshape(-1).tolist()]
    elif isinstance(prompt, (list, tuple)):
        odd = next((i for i in prompt if not _token_id(i)), None)
        if odd is not None:
            raise SpecError(f"{ACCEPTED}; got a {type(prompt).__name__} holding {type(odd).__name__}")
        ids = [int(i) for i in prompt]
    else:  # bytes, a float, a dict...: decoding them would feed whatever their items happen to be
        raise SpecError(f"{ACCEPTED}; got {type(prompt).__name__}")
    if not ids and isinstance(prompt, (list, tuple)):
        raise SpecError(
            "an empty list: no prompts (and no token ids) given; give text, a list of prompts, or token ids"
        )
    if not 0 < len(ids) <= model.cfg.n_ctx:
        raise SpecError(
            f"a prompt of token ids must hold 1 to {model.cfg.n_ctx} ids (the context), got {len(ids)}"
        )
    bad = [i for i in ids if not 0 <= i < model.cfg.d_vocab]
    if bad:
        raise SpecError(
            f"token id {bad[0]} is out of range for a vocabulary of {model.cfg.d_vocab} "
            f"(0-{model.cfg.d_vocab - 1})"
        )
    return model.tokenizer.decode(ids), ids


def bos_id(model) -> int:
    tok = model.tokenizer
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def str_tokens(model, ids) -> list[str]:
    """Each id decoded on its own (what a position 'is' in tables and plots); see `token_strings`."""
    return token_strings(model.tokenizer, ids)


def token_strings(tokenizer, ids) -> list[str]:
    """Each id decoded on its own, each distinct id once: the one place token ids become token strings.

    A byte-level token (GPT-2's) can be part of a UTF-8 character only: GPT-2 splits most emoji and
    many CJK characters into such pieces, and early layers of a lens often predict them. Decoded
    alone, every such piece is the same U+FFFD, so they read as their bytes instead, Python's way:
    ' ❤' is the tokens ' \\xe2\\x9d' and '\\xa4'. Whole characters in them stay as they are.
    """
    ids = [int(i) for i in ids]
    distinct = list(dict.fromkeys(ids))
    text = dict(zip(distinct, tokenizer.batch_decode([[i] for i in distinct])))
    broken = [i for i in distinct if "\ufffd" in text[i]]
    for i, raw in zip(broken, _token_bytes(tokenizer, broken)):
        # Trust the bytes only when they decode, as the tokenizer does, to what it gave.
        if raw is not None and raw.decode("utf-8", errors="replace") == text[i]:
            text[i] = raw.decode("utf-8", errors="backslashreplace")
    return [text[i] for i in ids]


def _token_bytes(tokenizer, ids: list[int]) -> list[bytes | None]:
    """The bytes of byte-level BPE tokens, read through GPT-2's byte-to-character table (None where a piece is
    not in it)."""
    if not ids:
        return []
    table = _byte_of_char()
    out = []
    for piece in tokenizer.convert_ids_to_tokens(ids):
        try:
            out.append(bytes(table[c] for c in piece))
        except (KeyError, TypeError):
            out.append(None)
    return out


@functools.lru_cache(maxsize=1)
def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: each of the 256 characters its vocabulary spells bytes with ->
    the byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


class TextStream:
    """Text as tokens arrive, one row each: `add(row, id)` returns what that token completes.

    A character split over several tokens comes out whole with its last piece (nothing before
    it), so streamed text equals the final decoded text rather than a run of U+FFFD marks.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pending: dict[int, list[int]] = {}

    def add(self, row: int, token: int) -> str:
        ids = self.pending.setdefault(row, [])
        ids.append(int(token))
        if len(ids) < 4 and _cut_short(
            self.tokenizer, ids
        ):  # a UTF-8 character is at most 4 bytes: wait for the rest
            return ""
        text = self.tokenizer.decode(ids)
        ids.clear()
        return text


def _cut_short(tokenizer, ids: list[int]) -> bool:
    """True when the tokens' bytes end inside a UTF-8 character (False when they are not byte-level)."""
    raw = _token_bytes(tokenizer, ids)
    if None in raw:
        return False
    try:
        b"".join(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data"
    return False
