"""Each example runs as a user would run it, on the bundled model, and writes its figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
FIGURES = {
    "compare_pruned_generations.py": "pruned_generations.png",
    "lens_during_generation.py": "lens_generation.png",
    "embedding_norms_vs_frequency.py": "embedding_norms.png",
    "capture_residual_norms.py": "residual_norms.png",
}


def test_there_are_at_least_four_examples():
    assert len(EXAMPLES) >= 4 and set(FIGURES) <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    fig = tmp_path / FIGURES.get(script.name, "")
    if script.name in FIGURES:
        assert fig.read_bytes()[:4] == b"\x89PNG"
