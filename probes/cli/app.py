"""The typer app: registers each command from its own module; torch is imported only when a command runs."""

from __future__ import annotations

import typer

from probes.cli import capture, embed, generate, info, lens, next_token, prune, report

app = typer.Typer(
    name="probes",
    help="Hook-based interpretability probes for GPT-2-family models: skip blocks, capture states, "
    "logit lens, embeddings and generation. Runs on the bundled Shakespeare GPT-2 unless --model says otherwise.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("info")(info.info)
app.command("generate")(generate.generate)
app.command("next-token")(next_token.next_token)
app.command("prune")(prune.prune)
app.command("lens")(lens.lens)
app.command("embed")(embed.embed)
app.command("capture")(capture.capture)
app.command("report")(report.report)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
