"""The Python API leaves the host process as it found it: loggers, library verbosity, signal handlers.

Only the CLI, in its `main()`, quiets libraries or takes over SIGTERM for its own process; the API
quiets the model's boot and defers interrupts while it writes a file, and restores both exactly.
"""

from __future__ import annotations

import logging
import signal
import threading

import pytest

import probes
from probes import io


def _host_state() -> dict:
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    return {
        "root level": root.level,
        "root handlers": list(root.handlers),
        "root filters": list(root.filters),
        **{f"{name} level": logging.getLogger(name).level for name in ("transformers", "transformer_lens")},
        "transformers verbosity": hf_logging.get_verbosity(),
        "transformers progress bar": hf_logging.is_progress_bar_enabled(),
        "hub progress bars disabled": are_progress_bars_disabled(),
        "SIGINT": signal.getsignal(signal.SIGINT),
        "SIGTERM": signal.getsignal(signal.SIGTERM),
    }


@pytest.fixture
def host():
    """A host that set its own levels and handlers, unlike any library default; put back after."""
    import transformer_lens.model_bridge  # noqa: F401 - its import sets transformers' verbosity; done first
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    saved = (root.level, logging.getLogger("transformer_lens").level, hf_logging.get_verbosity())
    sigterm = signal.getsignal(signal.SIGTERM)
    root.setLevel(logging.INFO)
    logging.getLogger("transformer_lens").setLevel(logging.WARNING)
    hf_logging.set_verbosity_info()

    def on_term(signum, frame):  # a Python callable, as a host's own handler would be
        pass

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        root.setLevel(saved[0])
        logging.getLogger("transformer_lens").setLevel(saved[1])
        hf_logging.set_verbosity(saved[2])


def test_load_and_capture_leave_the_host_process_alone(host, tiny_dir, tmp_path):
    before = _host_state()
    model = probes.load(str(tiny_dir))
    assert _host_state() == before
    probes.capture(model, "Hello there", hooks="resid_post").save(tmp_path / "a.safetensors")
    probes.capture(model, ["one text", "two texts"], hooks="resid_post", out=tmp_path / "states")
    assert _host_state() == before
    assert (tmp_path / "a.safetensors").is_file() and (tmp_path / "states" / "index.json").is_file()


@pytest.mark.parametrize(
    "handler", [signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler, lambda s, f: None]
)
def test_a_write_swaps_the_handlers_only_while_it_writes_and_restores_them_exactly(tmp_path, handler):
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen = []
    try:
        for s in saved:
            signal.signal(s, handler)
        with io.atomic_path(tmp_path / "f.txt") as tmp:
            # The caller's own work runs under the caller's handlers: an interrupt acts at once.
            seen.append([signal.getsignal(s) for s in saved])
            with open(tmp, "w") as fh:
                fh.write("x")
        with io.staged_folder(tmp_path / "d", lambda folder: folder.rename(tmp_path / "d")):
            seen.append([signal.getsignal(s) for s in saved])
        after = [signal.getsignal(s) for s in saved]
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    assert seen == [[handler, handler]] * 2
    assert after == [handler, handler]  # the same object, not merely an equal one
    assert all(a is handler for a in after)


def test_ctrl_c_while_a_folder_is_placed_waits_then_acts_and_the_handler_is_restored(tmp_path):
    import os

    saved = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own: Ctrl-C is KeyboardInterrupt
    try:

        def place(folder):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the folder is being moved into place
            folder.rename(tmp_path / "d")

        with pytest.raises(KeyboardInterrupt):
            with io.staged_folder(tmp_path / "d", place):
                pass
        assert (tmp_path / "d").is_dir()  # the move ran whole; the interrupt came after it
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, saved)


def test_a_handler_python_cannot_restore_is_left_alone(tmp_path, monkeypatch):
    """A handler installed outside Python (by a host embedding it) reads as None, and `signal.signal`
    cannot set None back: that signal is not swapped at all, rather than left swapped."""
    real_getsignal, real_signal = signal.getsignal, signal.signal
    calls = []

    def fake_signal(s, h):  # CPython's view of a handler it did not install: None
        calls.append(s)
        previous = real_signal(s, h)
        return None if s == signal.SIGTERM else previous

    monkeypatch.setattr(signal, "getsignal", lambda s: None if s == signal.SIGTERM else real_getsignal(s))
    monkeypatch.setattr(signal, "signal", fake_signal)
    before = {s: real_getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with io.atomic_path(tmp_path / "f.txt") as tmp:
        with open(tmp, "w") as fh:
            fh.write("x")
    assert signal.SIGTERM not in calls and signal.SIGINT in calls
    assert {s: real_getsignal(s) for s in before} == before


def test_writes_from_another_thread_touch_no_handler(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    errors = []

    def write():
        try:
            with io.atomic_path(tmp_path / "t.txt") as tmp:
                with open(tmp, "w") as fh:
                    fh.write("x")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    t.join()
    assert not errors and {s: signal.getsignal(s) for s in before} == before


def test_the_cli_changes_typer_only_while_main_runs(capsys):
    import typer.core

    before = typer.core.TyperOption.display_type_rich
    import probes.cli.app as app

    assert typer.core.TyperOption.display_type_rich is before  # importing probes patches nothing
    assert app.main(["capture", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--force" in shown and "<bool>" not in shown  # the fix applied while the command ran
    assert typer.core.TyperOption.display_type_rich is before  # and undone after
