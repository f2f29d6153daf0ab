"""Study defaults that depend on the model: prompts and held-out text for the bundled model, and for every
other.

The bundled model was trained on Shakespeare, so its studies start from Shakespeare; any other model
(GPT-2 and its family) gets the classic study's prompts and a modern-English held-out text:

    d = study_defaults(bundled=False)
    d.prompt, d.prune_prompt, d.lens_prompt, d.eval_path, d.why

Torch-free, so `--help` and the checks before loading can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_EVAL = ASSETS / "shakespeare-gpt2" / "heldout.txt"
ENGLISH_EVAL = ASSETS / "eval-english.txt"
EVAL_MAX_TOKENS = 2048  # of a single held-out text (a dataset is scored whole; --max-texts bounds it)
REPORT_SWEEP_TOKENS = 512  # the report's block sweep scores about this many (18 runs on each token)


def report_sweep_tokens(n_ctx: int) -> int:
    """Tokens the report's block sweep scores: whole context windows (n_ctx - 1 text tokens each) within
    REPORT_SWEEP_TOKENS, at least one; a window longer than the budget is cut to it (GPT-2: 512 of 1,023)."""
    step = n_ctx - 1
    if step > REPORT_SWEEP_TOKENS:
        return REPORT_SWEEP_TOKENS
    return (REPORT_SWEEP_TOKENS // step) * step


BUNDLED_PROMPT = "ROMEO:"
BUNDLED_LENS_PROMPT = "JULIET: Good night, good night! Parting is such sweet sorrow"
CLASSIC_PROMPT = "A long time ago in a galaxy far, far away..."
CLASSIC_PRUNE_PROMPT = "One ring to rule them all,"

# What --help shows for an option whose default depends on the model.
PROMPT_HELP = f"{BUNDLED_PROMPT!r} for the bundled model, {CLASSIC_PROMPT!r} for others"
PRUNE_PROMPT_HELP = f"{BUNDLED_PROMPT!r} for the bundled model, {CLASSIC_PRUNE_PROMPT!r} for others"
LENS_PROMPT_HELP = f"{BUNDLED_LENS_PROMPT!r} for the bundled model, {CLASSIC_PROMPT!r} for others"
EVAL_HELP = (
    "the model's own heldout.txt if its folder has one; else a Twelfth Night passage for the bundled model, "
    "a public-domain modern-English text for others"
)


@dataclass(frozen=True)
class StudyDefaults:
    """The prompts and held-out text a study uses when the user gives none, and why."""

    prompt: str  # sampling, next-token, the generation lens
    prune_prompt: str
    lens_prompt: str
    eval_path: Path
    why: str

    def as_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "prune_prompt": self.prune_prompt,
            "lens_prompt": self.lens_prompt,
            "eval_text": str(self.eval_path),
            "why": self.why,
        }


def study_defaults(bundled: bool, model_dir: str | Path | None = None) -> StudyDefaults:
    """Defaults for the bundled model (`bundled`) or any other; a model folder's own heldout.txt wins."""
    own = Path(model_dir) / "heldout.txt" if model_dir else None
    if bundled:
        return StudyDefaults(
            BUNDLED_PROMPT,
            BUNDLED_PROMPT,
            BUNDLED_LENS_PROMPT,
            own if own and own.is_file() else BUNDLED_EVAL,
            "the bundled Shakespeare model: Shakespeare prompts and a held-out Twelfth Night passage",
        )
    if own and own.is_file():
        return StudyDefaults(
            CLASSIC_PROMPT,
            CLASSIC_PRUNE_PROMPT,
            CLASSIC_PROMPT,
            own,
            "not the bundled model: the classic study's prompts, and the held-out text its folder ships",
        )
    return StudyDefaults(
        CLASSIC_PROMPT,
        CLASSIC_PRUNE_PROMPT,
        CLASSIC_PROMPT,
        ENGLISH_EVAL,
        "a GPT-2-family model: the classic study's prompts and a public-domain modern-English held-out text",
    )


def defaults_for_name(model: str | None) -> StudyDefaults:
    """Defaults for a `--model` value before loading (None or the bundled name: the bundled model)."""
    from probes.core.load import BUNDLED_NAME

    if model is None or str(model) in ("", BUNDLED_NAME):
        return study_defaults(True)
    folder = Path(str(model)).expanduser()
    return study_defaults(False, folder if folder.is_dir() else None)


def defaults_for_model(model) -> StudyDefaults:
    """Defaults for a loaded model, from what was loaded (probes.load records it)."""
    from probes.core.load import source_of

    src = source_of(model)
    return study_defaults(src.kind == "bundled", src.path if src.kind in ("hub", "local") else None)
