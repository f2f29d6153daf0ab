"""Word → token(s): which rows of the embedding matrix stand for a word (its token form); torch-free.

A word is not a token. GPT-2's tokenizer turns "dog" and " dog" into different ids, and a rare
word into several pieces, so "the embedding of a word" is a choice:

    first   the first token of the word as given, no space added (the classic study's convention;
            it reproduces v0.1's numbers, but turns 'dog' into 'd' on the bundled model)
    space   the word with one leading space, as GPT-2 meets it inside text: one whole-word token
            for most common words; its first token when even that form is split (the default)
    mean    the mean of the vectors of all the tokens of the leading-space form
    last    the last token of the leading-space form

A word given with its own leading space (" dog") gets no second one. `first` tokenizes the word
exactly as given, so `first` of " dog" is the token '␣dog'.
"""

from __future__ import annotations

from probes.errors import ProbesError, closest

TOKEN_FORMS = {
    "first": "first token of the word as given, no space added (the classic convention)",
    "space": "word with a leading space (its first token if even that is split)",
    "mean": "mean of the vectors of the leading-space form's tokens",
    "last": "last token of the leading-space form",
}
DEFAULT_TOKEN_FORM = "space"  # how GPT-2 sees a word in text; one whole-word token for most common words
CLASSIC_TOKEN_FORM = "first"


def check_token_form(form) -> str:
    """`form` if it is one of TOKEN_FORMS, else a ProbesError listing them."""
    if form not in TOKEN_FORMS:
        raise ProbesError(
            f"unknown token form {form!r}; choose one of {', '.join(TOKEN_FORMS)}"
            f" ({CLASSIC_TOKEN_FORM} reproduces the classic numbers){closest(str(form), TOKEN_FORMS)}"
        )
    return form


def with_space(word: str) -> str:
    """The word as it appears inside text: one leading space, never two."""
    return word if word.startswith(" ") else " " + word


def form_ids(token_ids: list[int], space_token_ids: list[int], form: str) -> list[int]:
    """The ids whose vectors (averaged, for `mean`) are the word's vector under `form`."""
    if form == "first":
        return token_ids[:1]
    if form == "space":
        return space_token_ids[:1]
    if form == "last":
        return space_token_ids[-1:]
    return list(space_token_ids)  # mean


def form_split(token_ids: list[int], space_token_ids: list[int], form: str) -> bool:
    """Whether the text this form reads is several tokens (then `first`, `space` and `last` use one piece of
    it)."""
    return len(token_ids if form == "first" else space_token_ids) > 1


def parse_words(text: str | None, flag: str) -> list[str] | None:
    """'dog, city' -> ['dog', 'city']; a leading space is kept at the start or inside double quotes.

    A space right after a comma separates (so 'dog, city' is two plain words); `" dog"` alone, or
    '"dog"," city"', keeps it, so the leading-space token can be asked for directly. Trailing
    spaces outside quotes are dropped. Empty entries are kept so the library can name them.
    """
    if text is None:
        return None
    if not text.strip():
        raise ProbesError(f"{flag} is empty; give comma-separated words, e.g. {flag} dog,city")
    words, cur, quoted = [], [], False  # cur: (character, inside quotes) pairs
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            words.append(_entry(cur, first=not words))
            cur = []
        else:
            cur.append((ch, quoted))
    if quoted:
        raise ProbesError(f"{flag} {text!r}: a double quote is not closed")
    words.append(_entry(cur, first=not words))
    return words


def _entry(chars: list[tuple[str, bool]], first: bool) -> str:
    """One entry without the spaces that only separate: unquoted ones at its end, and at its start after a
    comma."""
    while chars and chars[-1][0].isspace() and not chars[-1][1]:
        chars = chars[:-1]
    while not first and chars and chars[0][0].isspace() and not chars[0][1]:
        chars = chars[1:]
    return "".join(c for c, _ in chars)
