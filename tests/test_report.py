"""`probes report` end to end on the tiny checkpoint, and its refusal to clobber folders."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from probes.cli.app import app
from probes.errors import ProbesError
from probes.report import check_out_dir


def test_report_on_a_local_checkpoint(tiny_dir, tmp_path):
    out = tmp_path / "study"
    r = CliRunner().invoke(app, ["report", "--model", str(tiny_dir), "--out", str(out), "--max-new-tokens", "8",
                                 "--num-samples", "1", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["report"] == str(out.resolve() / "report.md")
    text = (out / "report.md").read_text()
    for section in ("## 1. The model", "## 2. Sampling", "## 3. The embedding", "## 4. Skipping blocks",
                    "## 5. The logit lens", "## 6. How to reproduce"):
        assert section in text
    # every figure the Markdown shows is there, and every PNG is shown
    shown = {line.rsplit("](", 1)[1][:-1] for line in text.splitlines() if line.startswith("![")}
    assert shown == set(d["figures"]) and len(shown) >= 9
    assert all((out / f).read_bytes()[:4] == b"\x89PNG" for f in shown)
    assert (out / "report.html").is_file()
    assert "heldout.txt" in text  # a model without its own held-out text uses the bundled passage
    assert "nan" not in text.lower().replace("nanogpt", "")


def test_report_replaces_only_a_previous_report(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.md").write_text("x")
    assert check_out_dir(old, force=True) == old.resolve()
    with pytest.raises(ProbesError, match="--force"):
        check_out_dir(old, force=False)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff")
    with pytest.raises(ProbesError, match="no report.md"):
        check_out_dir(other, force=True)


def test_report_refuses_the_current_folder_and_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.md").write_text("x")
    for bad in (".", str(tmp_path.parent), os.path.expanduser("~")):
        with pytest.raises(ProbesError, match="current folder|home"):
            check_out_dir(bad, force=True)
