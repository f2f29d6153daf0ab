"""Options shared by every command, defined once; sampling defaults are read from SamplingConfig."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from probes.core.sampling import SamplingConfig
from probes.studies.embeddings.forms import CLASSIC_TOKEN_FORM, DEFAULT_TOKEN_FORM, TOKEN_FORMS

SAMPLING = SamplingConfig()  # the defaults every sampling option shows (torch-free to import)

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=(
            "Model: omit for the bundled Shakespeare GPT-2, a hub name (gpt2, distilgpt2), or a local "
            "checkpoint directory."
        ),
    ),
]
Device = Annotated[str | None, typer.Option("--device", help="Device: cpu (default), cuda, cuda:N, mps.")]
Dtype = Annotated[
    str | None, typer.Option("--dtype", help="Compute dtype: float32 (default), float16, bfloat16.")
]
Threads = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads torch may use (default: torch's choice, one per core)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON alone on stdout (logs go to stderr).")]
Prompt = Annotated[
    str | None,
    typer.Option(
        "--prompt", "--start", "-p", help="Prompt text; FILE:path reads it from a file (nanoGPT's --start)."
    ),
]
Skip = Annotated[
    str | None,
    typer.Option(
        "--skip", help="Blocks to skip: odd, even, first-half, last-half, none, or a list like 1,3,5-7."
    ),
]
Keep = Annotated[str | None, typer.Option("--keep", help="Blocks to keep (the complement of --skip).")]
Top = Annotated[int, typer.Option("--top", help="How many tokens to list (per row, setting or word).")]
Plot = Annotated[
    str | None, typer.Option("--plot", help="Write a figure to this file (PNG, PDF or SVG by extension).")
]
Html = Annotated[
    str | None,
    typer.Option(
        "--html",
        help="Write an interactive view to this file: one self-contained HTML page for any browser, offline.",
    ),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace existing output files (without it, no file is ever overwritten)."),
]

# Sampling: one spelling each, everywhere. Defaults: `name: o.Temperature = o.SAMPLING.temperature`.
Temperature = Annotated[
    float, typer.Option("--temperature", "-t", help="Sampling temperature; 0 means greedy.")
]
TopK = Annotated[int, typer.Option("--top-k", help="Sample from the k most likely tokens only; 0: no top-k.")]
TopP = Annotated[
    float | None,
    typer.Option(
        "--top-p", help="Nucleus sampling: keep the smallest set of tokens with this much mass, in (0, 1]."
    ),
]
Greedy = Annotated[
    bool,
    typer.Option(
        "--greedy/--sample", help="Argmax decoding (ignores temperature, top-k and top-p), or sampling."
    ),
]
Seed = Annotated[
    int, typer.Option("--seed", help="Random seed; sample i draws from a generator seeded from (seed, i).")
]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", help="Tokens to generate per sample.")]
NumSamples = Annotated[int, typer.Option("--num-samples", "-n", help="How many samples to draw.")]
StopAtEos = Annotated[
    bool, typer.Option("--stop-at-eos", help="Stop a sample when it produces <|endoftext|>.")
]
Bos = Annotated[
    bool,
    typer.Option(
        "--bos/--no-bos",
        help="Prepend <|endoftext|> (TransformerLens' default) or not (nanoGPT, transformers).",
    ),
]
Stream = Annotated[
    bool, typer.Option("--stream", help="Print tokens as they are produced (one sample at a time).")
]

# Datasets: one spelling and one description of what a dataset can be, in every command that reads one.
DATASET_FORMS = (
    "a text file (one text per line, or blank-line separated with --split paragraphs), a .jsonl file "
    'with a "text" field on every line, a saved Hugging Face dataset directory (DIR:split picks a split '
    "of a DatasetDict; train by default), or HF:name[:split] (these two need the datasets package); "
    "FILE:path works too"
)


def dataset_option(what: str, *, required: bool = False):
    """The --dataset option, its help saying what the command does with it (`what`) and what a dataset can
    be."""
    kind = str if required else str | None
    return Annotated[kind, typer.Option("--dataset", help=f"{what}: {DATASET_FORMS}.")]


Streaming = Annotated[
    bool,
    typer.Option(
        "--streaming",
        help="With --dataset HF:name: read the texts as they arrive, never the whole corpus to disk (its "
        "length is then unknown, so progress shows no total).",
    ),
]
MaxTexts = Annotated[
    int | None, typer.Option("--max-texts", help="With --dataset: use only the first N texts.")
]
Split = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="With --dataset, how a text file holds its texts: lines "
        "(one per line, blank lines skipped; the default) or paragraphs "
        "(separated by blank lines).",
    ),
]


def given(ctx: typer.Context, *names: str) -> list[str]:
    """The flags among `names` (parameter names) that the user typed, rather than left at their defaults."""
    # By name: typer may bring its own copy of click, whose ParameterSource is another enum class.
    sources = {n: getattr(ctx.get_parameter_source(n), "name", "DEFAULT") for n in names}
    return ["--" + n.replace("_", "-") for n in names if sources[n] not in ("DEFAULT", "DEFAULT_MAP")]


def command_help(doc: str) -> str:
    """A command's docstring as its --help text: each paragraph on one line, as typer keeps a paragraph's
    line breaks (the source wraps docstrings at 110 columns; the terminal wraps the help)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


# The words and token form of the embeddings study: `probes embed` and `probes report` take them alike.
_FORMS_HELP = "; ".join(f"{k}: {v}" for k, v in TOKEN_FORMS.items())
_WORDS_HELP = (
    " Spaces after a comma separate; a leading space is kept at the start or in double quotes ('\" dog\"')."
)
Common = Annotated[
    str | None,
    typer.Option("--common", help="Comma list of common words (default: dog,city,book,love,science)."),
]
Rare = Annotated[
    str | None,
    typer.Option(
        "--rare", help="Comma list of rare or made-up words (default: xqzt,blorpt,thraldor,uvuvwevwe,zzzzz)."
    ),
]
Words = Annotated[
    str | None,
    typer.Option(
        "--words",
        help="Comma list of words to look at as one custom group (instead of the two default lists)."
        + _WORDS_HELP,
    ),
]
TokenForm = Annotated[
    str,
    typer.Option(
        "--token-form",
        help=(
            f"Which token(s) stand for a word. {_FORMS_HELP}. Default {DEFAULT_TOKEN_FORM}: how GPT-2 "
            f"meets a word in text, one whole-word token for most common words. '{CLASSIC_TOKEN_FORM}' "
            "reproduces the classic (v0.1) numbers."
        ),
    ),
]
