"""Progress: studies report tasks and notes; the CLI draws bars on stderr, or nothing under --json."""

from __future__ import annotations

import pytest

from probes.errors import ProbesError
from probes.progress import BarProgress, Progress, bar_progress, progress_of


def test_progress_of_accepts_none_a_callable_or_a_progress():
    assert type(progress_of(None)) is Progress  # under pytest stderr is no terminal: nothing is drawn
    assert type(progress_of(False)) is Progress and type(progress_of(True)) is BarProgress
    said = []
    p = progress_of(said.append)
    p.note("hello")
    with p.task("x", total=2) as t:
        t.advance()
    assert said == ["hello"]
    bar = BarProgress()
    assert progress_of(bar) is bar
    with pytest.raises(ProbesError, match="progress must be True, False, None"):
        progress_of(3)


def test_a_long_api_call_shows_a_bar_where_a_person_watches(tiny, monkeypatch, capsys):
    """#27 item 9: `progress=None` (the default) draws a bar when stderr is a terminal, and not otherwise;
    `progress=True` always, `progress=False` never."""
    import sys

    import probes

    texts = ["ROMEO: But soft", "what light through yonder window breaks"]
    probes.lens_over(tiny, texts, n_boot=10)
    assert "lens over texts" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    probes.lens_over(tiny, texts, n_boot=10)
    assert "lens over texts" in capsys.readouterr().err
    probes.lens_over(tiny, texts, n_boot=10, progress=False)
    assert "lens over texts" not in capsys.readouterr().err
    probes.logit_lens(tiny, texts)
    assert "prompts" in capsys.readouterr().err  # many prompts: one bar over them
    probes.logit_lens(tiny, texts, progress=False)
    assert "prompts" not in capsys.readouterr().err
    monkeypatch.undo()
    probes.lens_over(tiny, texts, n_boot=10, progress=True)
    assert "lens over texts" in capsys.readouterr().err


def test_the_bar_goes_to_stderr_with_count_rate_and_eta(capsys):
    p = bar_progress()
    with p.task("lens", total=4, unit="texts") as t:
        for _ in range(4):
            t.advance()
    p.note("done")
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        "lens" in err and "4/4" in err and "texts/s" in err and "ETA" in err and err.rstrip().endswith("done")
    )

    with p.task("quick", total=1, unit="texts") as t:
        t.advance()
    assert (
        "- texts/s" not in capsys.readouterr().err
    )  # a run too quick for rich's estimate still shows its rate


def test_a_failed_run_leaves_no_half_drawn_bar(capsys):
    p = bar_progress()
    with pytest.raises(ValueError), p.task("capture", total=10, unit="texts") as t:
        t.advance(3)
        raise ValueError("bad line")
    assert "3/10" not in capsys.readouterr().err


def test_quiet_progress_draws_no_bar_and_notes_on_stderr(capsys):
    # Under --json stdout holds the JSON alone; a note is a log line, as the CLI's own, on stderr.
    p = bar_progress(quiet=True)
    with p.task("lens", total=3) as t:
        t.advance(3)
    p.note("resuming the capture")
    assert capsys.readouterr() == ("", "resuming the capture\n")
