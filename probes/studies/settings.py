"""Argument checks of the studies that need no model and no torch, so the CLI runs them before loading (in a
second).

Each study calls the same function on its own arguments; the CLI calls it earlier. Nothing here
imports torch, transformers or matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from probes.core.sampling import PRUNE_SAMPLING, SamplingConfig
from probes.errors import ProbesError


def check_eval_path(eval_text: str | None) -> Path | None:
    """The --eval-text file if it can be read (None: the default text)."""
    from probes.io import check_regular, user_path

    if eval_text is None:
        return None
    p = user_path(eval_text)
    check_regular(p, "--eval-text")
    try:
        p.read_text(encoding="utf-8")  # all of it: a bad byte at the end must fail now, not after loading
    except (OSError, UnicodeDecodeError) as e:
        raise ProbesError(
            f"cannot read --eval-text {str(p)!r}: {getattr(e, 'strerror', None) or e}"
        ) from None
    return p


def prune_config(config: SamplingConfig | None = None, **overrides) -> SamplingConfig:
    """The config `compare_pruned` generates with: PRUNE_SAMPLING unless given, checked."""
    cfg = SamplingConfig.of(config if config is not None else PRUNE_SAMPLING, **overrides)
    if cfg.is_greedy and cfg.num_samples != 1:
        raise ProbesError(
            "several samples need sampling (greedy decoding gives one continuation); set greedy=False "
            "(--sample)"
        )
    return cfg


def capture_config(
    generate: int | None, config: SamplingConfig | None, overrides: dict
) -> SamplingConfig | None:
    """The SamplingConfig of `capture(..., generate=N)`, or None without `generate`; bad values raise.

    `overrides` may hold `bos` (how the prompt is encoded) without `generate`; any other sampling
    option needs it.
    """
    sampling = sorted(set(overrides) - {"bos"})
    if generate is None:
        if config is not None or sampling:
            raise ProbesError(f"sampling options ({', '.join(sampling) or 'config'}) need generate=N")
        return None
    if isinstance(generate, bool) or not isinstance(generate, int) or generate < 1:
        raise ProbesError(f"generate must be a number of tokens >= 1, got {generate!r}")
    cfg = SamplingConfig.of(config, **overrides, max_new_tokens=generate)
    if cfg.num_samples != 1:
        raise ProbesError("capture records one sequence; num_samples must be 1")
    return cfg


def comma_list(text: str, option: str, kind, example: str) -> list:
    """'0.1, 1,10' -> [0.1, 1.0, 10.0]: the values of a comma-list option; an empty list or item, or a bad
    item, is an error naming the option."""
    items = [x.strip() for x in str(text).split(",")]
    if not any(items):
        raise ProbesError(f"{option} must be a comma list like {example}, got {text!r}")
    if not all(items):
        raise ProbesError(f"{option} {text!r} has an empty item; write a comma list like {example}")
    try:
        return [kind(x) for x in items]
    except ValueError:
        bad = next(x for x in items if not _parses(kind, x))
        raise ProbesError(
            f"{option} must be a comma list like {example}; {bad!r} is not a number of that kind"
        ) from None


def _parses(kind, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def sampling_lists(temperature: str, top_k: str, top_p: str | None) -> tuple[list, list, list]:
    """The values of the --temperature, --top-k and --top-p comma lists (top-p None: [None], no top-p)."""
    return (
        comma_list(temperature, "--temperature", float, "0.1,1,10"),
        comma_list(top_k, "--top-k", int, "2,200 (0: no top-k)"),
        [None] if top_p is None else comma_list(top_p, "--top-p", float, "0.9,1"),
    )


def grid_configs(
    temperature=1.0, top_k=None, top_p=None, config: SamplingConfig | None = None
) -> list[SamplingConfig]:
    """Every combination of the given temperatures, top-k and top-p values (each a value or a list), as
    configs.

    The other fields (seed, tokens, samples) come from `config` (the defaults without it). A greedy
    `config` ignores all three, so it takes a grid of one setting only.
    """
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else [v]  # noqa: E731
    grid = [
        SamplingConfig.of(config, temperature=t, top_k=k, top_p=p)
        for t in as_list(temperature)
        for k in as_list(top_k)
        for p in as_list(top_p)
    ]
    if config is not None and config.greedy and len(grid) > 1:
        raise ProbesError(
            f"greedy decoding ignores temperature, top-k and top-p, so a grid of {len(grid)} settings "
            "needs sampling (greedy=False)"
        )
    return grid
