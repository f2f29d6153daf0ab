"""Options shared by every command, defined once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Model = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Model: omit for the bundled Shakespeare GPT-2, a hub name (gpt2, distilgpt2), or a local checkpoint directory."),
]
Device = Annotated[Optional[str], typer.Option("--device", help="Device: cpu (default), cuda, cuda:N, mps.")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="Compute dtype: float32 (default), float16, bfloat16.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed reproduces the same samples.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON alone on stdout (logs go to stderr).")]
Prompt = Annotated[
    Optional[str],
    typer.Option("--prompt", "--start", "-p", help="Prompt text; FILE:path reads it from a file (nanoGPT's --start)."),
]
Bos = Annotated[bool, typer.Option("--bos/--no-bos", help="Prepend <|endoftext|> (TransformerLens' default) or not (nanoGPT, transformers).")]
Skip = Annotated[
    Optional[str],
    typer.Option("--skip", help="Blocks to skip: odd, even, first-half, last-half, none, or a list like 1,3,5-7."),
]
Keep = Annotated[Optional[str], typer.Option("--keep", help="Blocks to keep (the complement of --skip).")]
NumSamples = Annotated[int, typer.Option("--num-samples", "-n", help="How many samples to draw.")]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", help="Tokens to generate per sample.")]
Temperature = Annotated[float, typer.Option("--temperature", "-t", help="Sampling temperature; 0 means greedy.")]
TopK = Annotated[Optional[int], typer.Option("--top-k", help="Keep only the k most likely tokens (0 or omitted: no top-k).")]
TopP = Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling: keep the smallest set with this much mass, in (0, 1].")]
Greedy = Annotated[bool, typer.Option("--greedy", help="Argmax decoding (ignores temperature, top-k and top-p).")]
StopAtEos = Annotated[bool, typer.Option("--stop-at-eos", help="Stop a sample when it produces <|endoftext|>.")]
Plot = Annotated[Optional[str], typer.Option("--plot", help="Write a figure to this file (PNG, PDF or SVG by extension).")]
Stream = Annotated[bool, typer.Option("--stream", help="Print tokens as they are produced (one sample at a time).")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
