"""The typer app: registers each command from its own module; `main` turns errors into one line; torch loads
only when a command runs."""

from __future__ import annotations

import os
import sys
import warnings

import typer
import typer.core

from probes.cli import capture, embed, generate, info, lens, next_token, prune, report, tuned_lens
from probes.cli import options as o


def _flags_show_no_type():
    """While `main()` runs: no `<bool>` in the type column of a flag; return what undoes it.

    Typer 0.2x prints `<bool>` in the type column of every flag (`--force <bool>`, even `--help`), as
    if it took a value; a flag takes none, so its column stays empty. Types of valued options stay.
    Applied by `main()` only, and undone on return: importing probes never changes typer.
    """
    option = getattr(typer.core, "TyperOption", None)
    shown = option.__dict__.get("display_type_rich") if option is not None else None
    if shown is None:
        return lambda: None  # another typer: nothing to fix

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) and self.metavar is None else shown(self, ctx)

    option.display_type_rich = display_type_rich

    def restore() -> None:
        option.display_type_rich = shown

    return restore


app = typer.Typer(
    name="probes",
    help="Hook-based interpretability probes for GPT-2-family models: skip blocks, capture states, "
    "logit lens, embeddings and generation. Runs on the bundled Shakespeare GPT-2 unless --model says "
    "otherwise.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMANDS = {
    "info": info.info,
    "generate": generate.generate,
    "next-token": next_token.next_token,
    "prune": prune.prune,
    "lens": lens.lens,
    "embed": embed.embed,
    "capture": capture.capture,
    "report": report.report,
}
for _name, _command in COMMANDS.items():
    app.command(_name, help=o.command_help(_command.__doc__))(_command)
app.add_typer(tuned_lens.app, name="tuned-lens")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"probes {version('probes')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_version
    ),
) -> None:
    """Hook-based interpretability probes for GPT-2-family models: skip blocks, capture states, logit lens,
    embeddings and generation. Runs on the bundled Shakespeare GPT-2 unless --model says otherwise."""


EX_IOERR = 74  # sysexits.h: an input/output error (here: stdout could not be written)


def main(args: list[str] | None = None) -> int:
    """Run the CLI on `args` (default: sys.argv) and return the exit code.

    The one error path: a ProbesError (any mistake a user can make) and a usage error (an unknown
    option, `--max-new-tokens abc`) are each one `error:` line on stderr and exit 2; Ctrl-C and
    SIGTERM are exit 130 after the command has cleaned up. Output that cannot be written to stdout (a
    full disk, a closed stdout) is one line and exit 74; a closed pipe (`| head -1`) is exit 0.
    """
    from probes.cli.output import CheckedStdout, ReaderGone, StdoutFailed, show_warning
    from probes.core import distributed
    from probes.errors import ProbesError, as_flags

    if distributed.launched() and os.environ.get("RANK") != "0":
        return _other_rank(args)

    warnings.showwarning = show_warning
    for stream in (sys.stdout, sys.stderr):  # PYTHONIOENCODING=ascii must not turn a token into a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    previous = _terminate_as_interrupt()
    restore_logs = _quiet_libraries()
    restore_help = _flags_show_no_type()
    stdout = sys.stdout
    sys.stdout = CheckedStdout(stdout)
    try:
        code = app(args=args, prog_name="probes", standalone_mode=False)
        sys.stdout.flush()  # output still buffered fails here, while an exit code can still say so
    except StdoutFailed as e:
        print(f"error: cannot write the output to stdout: {e}", file=sys.stderr, flush=True)
        return EX_IOERR
    except ProbesError as e:
        print(f"error: {_one_line(as_flags(str(e)))}", file=sys.stderr, flush=True)
        return 2
    except typer.TyperException as e:  # click's usage errors, as typer carries them
        return _usage_error(e)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except (BrokenPipeError, ReaderGone):
        return 0
    except SystemExit as e:  # typer exits on a broken pipe even when not standalone
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.stdout = stdout
        distributed.stop()
        restore_help()
        restore_logs()
        _restore_terminate(previous)
    code = code if isinstance(code, int) else 0
    if code == 130:  # typer turns Ctrl-C inside a command into exit 130, silently
        print("interrupted; nothing more was written", file=sys.stderr, flush=True)
    return code


def _other_rank(args) -> int:
    """`main()` on a rank other than 0 under torchrun: the same command, computing its share, silent.

    Rank 0 prints the output, the progress and the warnings, writes the files and shows the errors
    that every rank meets alike (a bad option, a bad dataset line); this rank shows only its own
    (`distributed.own`: a shard it could not write; `RankLost`: another rank stopped), with its
    number.
    """
    from probes.core import distributed
    from probes.errors import ProbesError, as_flags

    err = sys.stderr
    with open(os.devnull, "w") as null:
        sys.stdout, sys.stderr = null, null
        previous = _terminate_as_interrupt()
        restore_logs = _quiet_libraries()
        try:
            code = app(args=args, prog_name="probes", standalone_mode=False)
        except ProbesError as e:
            if getattr(e, "rank_specific", False) or isinstance(e, distributed.RankLost):
                message = str(e)
                if not message.startswith("rank "):
                    message = f"rank {os.environ.get('RANK')}: {message}"
                print(f"error: {_one_line(as_flags(message))}", file=err, flush=True)
            code = 2
        except typer.TyperException as e:
            code = getattr(e, "exit_code", 2)
        except (KeyboardInterrupt, typer.Abort):
            code = 130
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, err
            restore_logs()
            _restore_terminate(previous)
            distributed.stop()
    return code if isinstance(code, int) else 0


def _quiet_libraries():
    """Keep library chatter off the CLI's stderr (its process, its choice); return what undoes it.

    TransformerLens warns through the root logger, transformers through its own logger (whose level it
    reads from TRANSFORMERS_VERBOSITY when imported, which `--help` never does). The API quiets only a
    model's boot; undone on return, for callers that run `main()` in their own process (the tests).
    """
    import logging

    loggers = [logging.getLogger(name) for name in ("", "transformers", "transformer_lens")]
    levels = [logger.level for logger in loggers]
    env = os.environ.get("TRANSFORMERS_VERBOSITY")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for logger in loggers:
        logger.setLevel(logging.ERROR)

    def restore() -> None:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if env is None:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)

    return restore


def _one_line(message: str) -> str:
    return " ".join(message.split("\n"))


def _usage_error(e) -> int:
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":
        e.show()  # `probes` alone: the help text
        return 0
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    print(f"error: {_one_line(e.format_message())}{hint}", file=sys.stderr, flush=True)
    return getattr(e, "exit_code", 2)


def _terminate_as_interrupt():
    """Handle SIGTERM like Ctrl-C, so every `finally` and atomic write cleans up; returns the old handler."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_terminate(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The `probes` console script.

    Once a command that loaded torch has finished, every file it wrote is closed and in place, so
    the process ends without the interpreter's teardown of torch, transformers and matplotlib
    (1.5-3 s of freeing modules one by one); output is flushed first.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # a closed pipe or a full disk: nothing more can be shown
    # After a failed write stdout still holds what it could not write; the interpreter's teardown
    # would try again and print a traceback of its own.
    if "torch" in sys.modules or code == EX_IOERR:
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
