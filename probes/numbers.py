"""Number display: the one formatter for every number a user reads in a table, report, message or figure.

    show_number(-0.00004, ".3f")   -> '0.000'      (never '-0.000')
    show_number(float("nan"))      -> 'n/a'
    show_change(-0.041)            -> '-0.041 (lower)'
    show_change(0.25)              -> '+0.250 (higher)'
    count(1, "text"), count(2000, "shard")  -> '1 text', '2,000 shards'

A value that rounds to zero is shown without its sign: '-0.000' says "a tiny negative number" where
the run measured nothing (an entropy of 1e-9 below zero is float error, not a finding). A change
is shown with its sign and its direction in words, so a loss that goes down never reads as a cost.
JSON keeps the raw floats: it is data, not display.
"""

from __future__ import annotations

import math
import numbers
import re

NA = "n/a"
_NONZERO = re.compile(r"[1-9]")


def missing(value) -> bool:
    """None or NaN: a number the run does not have (distinct-2 of a 1-token sample is NaN)."""
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def show_number(value, spec: str = "", na: str = NA) -> str:
    """`value` formatted with `spec` (as in an f-string), `na` when it is None or NaN; no '-0.000'."""
    if missing(value):
        return na
    text = format(value, spec)
    # Strip the sign of a value that rounds to zero; the exponent of '1e-05' is not a sign to strip.
    mantissa = re.split(r"[eE]", text)[0]
    if text[:1] in "-+" and not _NONZERO.search(mantissa):
        text = text[1:]
    return text


def show_change(value, spec: str = ".3f", unit: str = "") -> str:
    """A difference with its sign and its direction: '+0.250 (higher)', '-0.041 (lower)', '0.000 (no
    change)'."""
    if missing(value):
        return NA
    text = show_number(value, "+" + spec.lstrip("+"))
    unit = f" {unit}" if unit else ""
    if text[:1] == "+":
        return f"{text}{unit} (higher)"
    if text[:1] == "-":
        return f"{text}{unit} (lower)"
    return f"{text}{unit} (no change)"


def distinct_labels(values, sign: str = "", sig: int = 3) -> list[str]:
    """Labels for `values` (numbers, None or NaN: `NA`), with the fewest decimals, at least `sig` significant
    digits, that tell every two different values apart: 11.00 and 11.03 read '11.00' and '11.03', never
    '11' twice. `sign` "+" signs them."""
    import math

    finite = [float(v) for v in values if not missing(v)]
    if not finite:
        return [NA for _ in values]
    top = max(abs(v) for v in finite) or 1.0
    start = max(0, sig - 1 - math.floor(math.log10(top)))
    for decimals in range(start, start + 8):
        labels = {v: show_number(v, f"{sign}.{decimals}f") for v in finite}
        if len(set(labels.values())) == len(set(finite)):
            break
    return [NA if missing(v) else labels[float(v)] for v in values]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 text', '2,000 texts': a count with its noun in the right number (`plural` when not noun + 's')."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
