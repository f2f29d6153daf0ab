"""Prompts: read `FILE:` prompts, tokenize with or without BOS, crop to the context from the left."""

from __future__ import annotations

import warnings
from pathlib import Path

from probes.errors import ProbesError


class ProbesWarning(UserWarning):
    """Something the user should know about, printed on stderr by the CLI."""


def read_prompt(text: str | None) -> str:
    """The prompt itself; `FILE:path` reads it from a file, as nanoGPT's sample.py does."""
    if text is None:
        raise ProbesError("no prompt given")
    if text.startswith("FILE:"):
        path = Path(text[5:]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ProbesError(f"cannot read prompt file {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    return text


def encode(model, prompt: str, *, bos: bool = True, max_len: int | None = None) -> list[int]:
    """Token ids fed to the model: BOS (`<|endoftext|>`) first if `bos`, cropped from the left.

    A prompt longer than the context keeps its last `n_ctx` tokens (nanoGPT's crop) with a warning.
    """
    ids = list(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if bos:
        ids = [bos_id(model)] + ids
    if not ids:
        raise ProbesError("the prompt is empty; give some text, or keep the BOS token (--bos)")
    limit = max_len or model.cfg.n_ctx
    if len(ids) > limit:
        warnings.warn(
            f"the prompt has {len(ids)} tokens, more than the context of {limit}; keeping the last {limit}",
            ProbesWarning,
            stacklevel=2,
        )
        ids = ids[-limit:]
    return ids


def bos_id(model) -> int:
    tok = model.tokenizer
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def token_strings(model, ids) -> list[str]:
    """Each id decoded on its own (what a position 'is' in tables and plots)."""
    return [model.tokenizer.decode([int(i)]) for i in ids]
