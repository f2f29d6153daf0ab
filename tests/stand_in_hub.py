"""A Hub dataset of several data sources, streamed from local JSON Lines files: `datasets.load_dataset` is
replaced, in this process (`install`) or in every Python process a test starts (`sitecustomize`: torchrun's
ranks too), and each source a process opens is logged with its rank."""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "PROBES_TEST_HUB"  # the stand-in's settings file: {"files": [...], "log": path}
HERE = Path(__file__).resolve().parent

SITECUSTOMIZE = f"""
import os, sys
if os.environ.get({ENV!r}):
    sys.path.insert(0, {str(HERE)!r})
    import stand_in_hub
    stand_in_hub.install(os.environ[{ENV!r}])
"""


def install(settings: str | os.PathLike) -> None:
    """Replace `datasets.load_dataset` by a stream of the settings' files, one data source each."""
    import datasets

    conf = json.loads(Path(settings).read_text())

    def rows(files):
        for f in files:
            with open(conf["log"], "a") as log:
                log.write(f"{os.environ.get('RANK', '-')} {Path(f).name}\n")
            with open(f) as fh:
                for line in fh:
                    yield json.loads(line)

    def load_dataset(name, split=None, streaming=False, **kw):
        assert streaming, "the stand-in hub streams only"
        return datasets.IterableDataset.from_generator(rows, gen_kwargs={"files": list(conf["files"])})

    datasets.load_dataset = load_dataset


def stand_in(folder: Path, sources: list[list[str]]) -> dict:
    """Write one JSON Lines file per source and the settings; return the environment that installs the
    stand-in in subprocesses (PYTHONPATH holds a sitecustomize) and the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for s, texts in enumerate(sources):
        path = folder / f"source-{s}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        files.append(str(path))
    log = folder / "opened.log"
    settings = folder / "hub.json"
    settings.write_text(json.dumps({"files": files, "log": str(log)}))
    site = folder / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"env": {ENV: str(settings), "PYTHONPATH": path}, "settings": settings, "log": log}


def opened(log: Path) -> dict[str, list[str]]:
    """{rank: sources it opened, in order} from the log ('-' for a process outside torchrun)."""
    out: dict[str, list[str]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            rank, name = line.split()
            out.setdefault(rank, []).append(name)
    return out
