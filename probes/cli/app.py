"""The typer app: registers each command from its own module; `main` turns errors into one line; torch loads only when a command runs."""

from __future__ import annotations

import sys
import warnings

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

COMMANDS = {
    "info": info.info, "generate": generate.generate, "next-token": next_token.next_token, "prune": prune.prune,
    "lens": lens.lens, "embed": embed.embed, "capture": capture.capture, "report": report.report,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main(args: list[str] | None = None) -> int:
    """Run the CLI on `args` (default: sys.argv) and return the exit code.

    The one error path: a ProbesError (any mistake a user can make) is one `error:` line on
    stderr and exit 2; typer reports usage errors itself (exit 2); Ctrl-C is exit 130.
    """
    from probes.cli.output import show_warning
    from probes.errors import ProbesError

    warnings.showwarning = show_warning
    try:
        app(args=args, prog_name="probes")  # standalone: typer ends every run with SystemExit
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except ProbesError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        return 0
    else:
        code = 0
    if code == 130:  # typer turns Ctrl-C inside a command into exit 130, silently
        print("interrupted; nothing more was written", file=sys.stderr, flush=True)
    return code


def entry() -> None:
    """The `probes` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
