"""Layer specs: parse `odd`, `even`, `first-half`, `last-half`, `none`, `1,3,5-7` into block indices."""

from __future__ import annotations

from probes.errors import SpecError

NAMED = ("odd", "even", "first-half", "last-half", "none", "all")


def parse_layers(spec: str | int | list[int] | tuple[int, ...] | None, n_layers: int) -> list[int]:
    """Sorted, distinct block indices named by `spec` for a model of `n_layers` blocks.

    `spec` is a word (odd, even, first-half, last-half, none, all), a comma list of indices and
    inclusive ranges (`1,3,5-7`), or already a list of ints. Anything else raises SpecError that
    says how many blocks the model has.
    """
    where = f"the model has {n_layers} blocks (0-{n_layers - 1})"
    if spec is None:
        return []
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = [spec]
    if isinstance(spec, (list, tuple)):
        out = []
        for i in spec:
            if not isinstance(i, int) or isinstance(i, bool):
                raise SpecError(f"layer {i!r} is not an integer; {where}")
            if not 0 <= i < n_layers:
                raise SpecError(f"layer {i} is out of range: {where}")
            out.append(i)
        return sorted(set(out))
    if not isinstance(spec, str):
        raise SpecError(f"layer spec {spec!r} must be a string or a list of integers")
    text = spec.strip().lower()
    if not text:
        raise SpecError(f"empty layer spec; use one of {', '.join(NAMED)} or a list like 1,3,5-7 ({where})")
    half = n_layers // 2
    if text == "odd":
        return list(range(1, n_layers, 2))
    if text == "even":
        return list(range(0, n_layers, 2))
    if text == "first-half":
        return list(range(0, half))
    if text == "last-half":
        return list(range(n_layers - half, n_layers))
    if text == "none":
        return []
    if text == "all":
        return list(range(n_layers))
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise SpecError(f"layer spec {spec!r} has an empty item; {where}")
        lo_s, dash, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if dash else lo
        except ValueError:
            if part in NAMED:
                raise SpecError(_mixed_message(text, n_layers, where)) from None
            raise SpecError(
                f"unknown layer spec {part!r}: use one of {', '.join(NAMED)}, or indices and ranges like "
                f"1,3,5-7 ({where})"
            ) from None
        if lo < 0 or hi < 0:
            raise SpecError(f"layer spec {part!r}: indices start at 0; {where}")
        if hi < lo:
            raise SpecError(f"layer range {part!r} is reversed (write {hi}-{lo}); {where}")
        if hi >= n_layers:
            raise SpecError(f"layer {hi} in {spec!r} is out of range: {where}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def _mixed_message(text: str, n_layers: int, where: str) -> str:
    """Why 'odd,last-half' fails: a named spec stands alone; what each name is, and their union as a list."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    union = sorted({i for w in words for i in parse_layers(w, n_layers)})  # a bad item raises its own error
    each = "; ".join(f"{w} is {format_layers(parse_layers(w, n_layers))}" for w in words if w in NAMED)
    return (
        f"layer spec {text!r} mixes named specs: a name ({', '.join(NAMED)}) is a whole spec on its own and "
        f"cannot be combined with commas. Here {each}; for all of them write {format_layers(union)} ({where})"
    )


def complement(layers: list[int], n_layers: int) -> list[int]:
    """The blocks not in `layers`, in order."""
    chosen = set(layers)
    return [i for i in range(n_layers) if i not in chosen]


def format_layers(layers: list[int]) -> str:
    """Compact text for a list of blocks: [0, 1, 2, 5] -> '0-2,5'; [] -> 'none'."""
    if not layers:
        return "none"
    parts, start, prev = [], layers[0], layers[0]
    for i in layers[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def compare_blocks(spec, n_layers: int) -> list[int]:
    """The blocks a comparison run skips (`--compare-skip`, `compare_skip=`): `parse_layers`, and at least
    one."""
    blocks = parse_layers(spec, n_layers)
    if not blocks:
        raise SpecError(
            f"compare_skip={spec!r} names no block: the comparison would be the full "
            "model against itself; name the blocks to skip, as odd or 1,3"
        )
    return blocks
