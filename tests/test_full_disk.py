"""A full disk, as a file size limit (RLIMIT_FSIZE, `ulimit -f`): every writer says so in one line, keeps the
old output, and leaves no temporary file or staging folder; a dataset capture then resumes to the files an
unlimited run writes.

The limit is set in a child process (`python -m probes`), so the test process itself is never limited.
Writes past it fail with EFBIG, as they fail with ENOSPC on a full file system: through the same
paths (`probes.io.atomic_path`, `staged_folder`), the same one line.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

LIMIT = 6_000  # bytes: less than any shard, lens or figure below, more than the small JSON files


def probes_run(
    *args, limit: int | None = LIMIT, cwd=None, code: str | None = None
) -> subprocess.CompletedProcess:
    def limited():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "probes", *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, preexec_fn=limited, cwd=cwd, env={**os.environ}
    )


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert "file too large" in lines[0], lines[0]
    return lines[0]


def no_temporaries(folder) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], list(folder.iterdir())


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(["ROMEO: But soft, what light through yonder window breaks"] * 6) + "\n")
    return path


def test_a_capture_file_past_the_limit_is_one_line_and_the_old_file_is_kept(tiny_dir, tmp_path):
    out = tmp_path / "states.safetensors"
    out.write_bytes(b"the old capture")
    r = probes_run("capture", "-m", tiny_dir, "--prompt", "ROMEO: soft", "--out", out, "--force")
    assert str(out) in one_error_line(r)
    assert out.read_bytes() == b"the old capture"
    no_temporaries(tmp_path)
    code = (
        "import probes, sys\n"
        f"m = probes.load({str(tiny_dir)!r})\n"
        "acts = probes.capture(m, 'ROMEO: soft')\n"
        "try:\n"
        f"    acts.save({str(tmp_path / 'api.safetensors')!r})\n"
        "except probes.ProbesError as e:\n"
        "    print('error:', e, file=sys.stderr); sys.exit(2)\n"
    )
    one_error_line(probes_run(code=code))  # Activations.save: the same one line from the API
    no_temporaries(tmp_path)


def test_a_dataset_capture_past_the_limit_resumes_to_the_files_of_an_unlimited_run(tiny_dir, texts, tmp_path):
    args = ["capture", "-m", tiny_dir, "--dataset", f"FILE:{texts}", "--hooks", "resid_post"]
    args += ["--shard-size", "8K"]
    r = probes_run(*args, "--out", tmp_path / "s")
    assert "rerun the same command to resume" in one_error_line(r)
    no_temporaries(tmp_path / "s")
    assert probes_run(*args, "--out", tmp_path / "s", limit=None).returncode == 0
    assert probes_run(*args, "--out", tmp_path / "ref", limit=None).returncode == 0
    names = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == names
    for name in names:
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_a_tuned_lens_and_a_report_past_the_limit_leave_no_folder(tiny_dir, texts, tmp_path):
    r = probes_run("tuned-lens", "train", "-m", tiny_dir, "--dataset", f"FILE:{texts}", "--steps", "1",
                   "--out", tmp_path / "lens")  # fmt: skip
    assert "lens" in one_error_line(r)
    r = probes_run("report", "-m", tiny_dir, "--out", tmp_path / "study", "--max-new-tokens", "4")
    assert "study" in one_error_line(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]  # no folder, no staging folder
