"""The training script's record keeping: the commands and table a model card gives for its stages."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest

from probes.core.load import BUNDLED_DIR

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_bundled_model.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_bundled_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stage(**overrides):
    stage = {
        "steps": 100,
        "train_minutes": 1.5,
        "threads": 2,
        "seed": 7,
        "lr": 0.002,
        "dropout": 0.1,
        "attn_dropout": 0.0,
        "weight_decay": 0.1,
        "min_lr": 0.1,
        "ema": 0.0,
        "compile": True,
    }
    return stage | overrides


ARCH = {"layers": 6, "d_model": 192, "heads": 6, "vocab": 8192, "ctx": 256, "batch": 16}


def test_command_round_trips_through_the_parser(script):
    stage = _stage(lr=0.0006, dropout=0.2, min_lr=0.0, ema=0.9995, compile=False)
    config = ARCH | {"d_model": 128, "layers": 4, "val_works": ["hamlet", "sonnets"]}
    argv = shlex.split(script._command(stage, config, init_from="STAGE1_DIR"))[2:]
    args = script.build_parser().parse_args(argv)
    assert (args.steps, args.threads, args.seed) == (100, 2, 7)
    assert (args.lr, args.dropout, args.min_lr, args.ema, args.no_compile) == (0.0006, 0.2, 0.0, 0.9995, True)
    assert (args.d_model, args.layers, args.heads) == (128, 4, 6)
    assert args.init_from == Path("STAGE1_DIR")
    assert args.val_works == "hamlet,sonnets"


def test_command_leaves_out_defaults(script):
    cmd = script._command(_stage(), ARCH | {"val_works": list(script.VAL_WORKS)})
    assert cmd == "python scripts/train_bundled_model.py --steps 100 --threads 2 --seed 7"


def test_older_records_read_with_the_defaults_of_newer_options(script):
    # A stage recorded before --min-lr and --ema existed ran with their defaults.
    old = {k: v for k, v in _stage().items() if k not in ("min_lr", "ema")}
    table = script._stage_table({"stages": [old, _stage(ema=0.999, min_lr=0.0)]})
    first, second = table.splitlines()[2:]
    assert "| 0.0002 |" in first and "| last |" in first
    assert "| 0 |" in second and "moving average (decay 0.999)" in second


def test_bundled_card_gives_the_recorded_commands(script):
    stats = json.loads((BUNDLED_DIR / "training.json").read_text())
    card = (BUNDLED_DIR / "MODEL_CARD.md").read_text()
    assert script._training_commands(stats) in card
    assert script._stage_table(stats) in card


def test_moving_average_of_weights(script):
    import torch

    model, average = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2).requires_grad_(False)
    start = [p.clone() for p in average.parameters()]
    script.update_average(average, model, decay=0.9, step=1000)
    for a, s, m in zip(average.parameters(), start, model.parameters()):
        torch.testing.assert_close(a, 0.9 * s + 0.1 * m)
        assert a.is_leaf and not a.requires_grad
    # Early on the decay is smaller, so the average follows the model quickly.
    script.update_average(average, model, decay=0.9, step=0)
    for a, s, m in zip(average.parameters(), start, model.parameters()):
        torch.testing.assert_close(a, 0.1 * (0.9 * s + 0.1 * m) + 0.9 * m)
