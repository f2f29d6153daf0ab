"""Messages that tell the truth: mixed layer specs, loss changes, 'possible' tokens, no -0.000, whole Hub
sentences."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import torch
from cli_runner import run_cli

import probes
from probes.core.layers import parse_layers
from probes.errors import ModelLoadError, SpecError
from probes.numbers import show_change, show_number


@pytest.mark.parametrize(
    "spec, words",
    [
        ("odd,last-half", ["mixes named specs", "odd is 1,3,5", "last-half is 3-5", "write 1,3-5"]),
        ("even, 5", ["mixes named specs", "even is 0,2,4", "write 0,2,4-5"]),
        ("none,odd", ["none is none", "write 1,3,5"]),
    ],
)
def test_mixing_named_specs_is_its_own_error(spec, words):
    with pytest.raises(SpecError) as e:
        parse_layers(spec, 6)
    message = str(e.value)
    assert "unknown layer spec" not in message, message
    for w in words:
        assert w in message, (w, message)


def test_a_bad_item_beside_a_name_is_still_named():
    with pytest.raises(SpecError, match="unknown layer spec 'banana'"):
        parse_layers("odd,banana", 6)
    with pytest.raises(SpecError, match="out of range"):
        parse_layers("odd,9", 6)


def test_cli_mixed_spec_message(tiny_dir):
    r = run_cli("prune", "-m", tiny_dir, "--skip", "odd,last-half")
    assert r.exit_code == 2 and "mixes named specs" in r.stderr and "write 1-3" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "value, spec",
    [
        (-1e-9, ".3f"),
        (-0.0, ".3f"),
        (-0.0004, ".3f"),
        (-0.0, ".4g"),
        (-1e-12, ".2f"),
        (-0.00001, ".1%"),
        (-0.0, "+.3f"),
        (-0.4, ".0f"),
    ],
)
def test_no_negative_zero(value, spec):
    text = show_number(value, spec)
    assert not text.startswith("-") and float(text.rstrip("%")) == 0


def test_numbers_keep_real_signs_and_exponents():
    assert show_number(-0.041, ".3f") == "-0.041" and show_number(-1e-5, ".0e") == "-1e-05"
    assert show_number(float("nan")) == "n/a" and show_number(None, na="-") == "-"
    assert (
        show_change(-0.041) == "-0.041 (lower)" and show_change(0.25, unit="nats") == "+0.250 nats (higher)"
    )
    assert show_change(-1e-7) == "0.000 (no change)"


def test_every_text_formatter_goes_through_it():
    from probes.cli.output import table
    from probes.report.markdown import fmt, md_table

    assert fmt(-1e-7, ".3f") == "0.000" and "-0" not in md_table(["x"], [[-0.0]])[2]
    assert table([[-0.0, -1e-7]]).split() == ["0", "-1e-07"]  # 4 significant digits keep a real tiny value


def _sweep(increases):
    blocks = [{"block": i, "loss_increase": v} for i, v in enumerate(increases)]
    ranked = sorted(blocks, key=lambda b: -b["loss_increase"])
    return ranked[0], ranked[-1]


def test_a_loss_that_goes_down_is_not_a_cost():
    from probes.report.sections import _sweep_sentence

    down = _sweep_sentence(*_sweep([0.3, -0.041]))
    assert "raises the held-out loss the most (+0.300 nats/token)" in down
    assert "skipping block 1 changes it by -0.041 nats/token (lower)" in down and "+-" not in down
    up = _sweep_sentence(*_sweep([0.3, 0.041]))
    assert up.endswith("and block 1 the least (+0.041).")
    flat = _sweep_sentence(*_sweep([0.3, -1e-5]))
    assert "leaves it unchanged (0.000 nats/token)" in flat and "-0.000" not in flat
    all_down = _sweep_sentence(*_sweep([-0.2, -0.5]))
    assert "raises" not in all_down and "every block lowers the held-out loss" in all_down


def test_a_run_that_lowers_the_loss_says_so():
    from probes.report.sections import _run_sentence

    full = {"eval_loss": 4.0, "distinct_2": 0.5, "repeated_4gram_fraction": 0.1, "ppl_under_full": 3.0}
    run = NS(name="odd", metrics={**full, "eval_loss": 3.9, "tf_top1_agreement": 0.5, "tf_kl": 0.1})
    assert "Skipping odd lowered the held-out loss from 4.000 to 3.900" in _run_sentence(run, full)


def test_possible_tokens_count_a_stated_probability_not_underflow(tiny, tiny_hf):
    from probes.studies.next_token import POSSIBLE_P

    ids = tiny.tokenizer.encode("The")
    dist = probes.next_token_distribution(tiny, ids, temperature=[0.01, 0.1, 1.0], bos=False)
    with torch.no_grad():
        logits = tiny_hf(torch.tensor([ids])).logits[0, -1].double()  # transformers' own forward
    for s in dist.settings:
        p = torch.softmax(logits / s.config.temperature, -1)
        assert s.support == int((p >= POSSIBLE_P).sum())
    for s in dist.settings[:2]:
        # A float32 count of p > 0 measures where the tail underflows (all 8192 tokens at T=0.1 here), not the
        # setting.
        assert s.support < int((torch.softmax(logits.float() / s.config.temperature, -1) > 0).sum())
    assert dist.settings[0].as_dict()["support_min_prob"] == POSSIBLE_P


def test_next_token_text_states_the_threshold(tiny_dir):
    r = run_cli("next-token", "-m", tiny_dir, "--prompt", "The", "-t", "0.1")
    assert r.exit_code == 0, r.output
    assert "token(s) with p >= 1e-06" in r.stdout and "possible" not in r.stdout and "-0.000" not in r.stdout


def test_hub_errors_keep_whole_sentences(monkeypatch):
    import huggingface_hub

    from probes.core.load import _download

    long = (
        "Repository Not Found for url: https://huggingface.co/api/models/someone/"
        + "x" * 180
        + "/revision/main. "
        "Please make sure you specified the correct `repo_id` and `repo_type`.\nIf you are trying to access "
        "a private or gated repo, make sure you are authenticated. For more details, see the docs."
    )

    def fail(*a, **k):
        raise RuntimeError(long)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(ModelLoadError) as e:
        _download("someone/model")
    message = str(e.value)
    assert "x" * 180 + "/revision/main; use the bundled model" in message or "`repo_type`" in message
    cause = message.split("Hugging Face Hub: ", 1)[1].split("; use the bundled model")[0]
    # Whole sentences only: the cause ends where a sentence of the original ends.
    assert (cause + ".") in " ".join(long.split()) and "\n" not in message


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "'a.png' already exists; pass force=True to overwrite it",
            "'a.png' already exists; pass --force to",
        ),
        ("eval_text='x.txt' is empty or too short", "--eval-text 'x.txt' is empty"),
        ("shard_bytes=1MB is too small", "--shard-size 1MB is too small"),
        ("needs sampling (greedy=False)", "needs sampling (--sample)"),
        ("scoring is off (evaluate=False)", "scoring is off (--no-eval)"),
        ("keep the BOS token (bos=True)", "keep the BOS token (--bos)"),
        ("T=0.1, top-k=2: --top-k 2 stays", "T=0.1, top-k=2: --top-k 2 stays"),  # no parameter here
    ],
)
def test_library_messages_name_parameters_and_the_cli_shows_flags(message, shown):
    from probes.errors import as_flags

    assert as_flags(message).startswith(shown)


def test_an_existing_output_says_force_true_in_the_api_and_force_in_the_cli(tiny, tiny_dir, tmp_path):
    out = tmp_path / "s.safetensors"
    out.write_bytes(b"old")
    with pytest.raises(probes.ProbesError, match=r"pass force=True to overwrite it"):
        probes.capture(tiny, "Hi", hooks="resid_post").save(out)
    r = run_cli("capture", "--model", tiny_dir, "--prompt", "Hi", "--out", out)
    assert r.exit_code == 2 and "pass --force to overwrite it" in r.stderr and "force=True" not in r.stderr
    assert out.read_bytes() == b"old"


def test_bar_labels_tell_close_values_apart():
    """#27 item 9: prune's bars of 11.00 and 11.03 read '11.00' and '11.03', not '11' twice."""
    from probes.numbers import distinct_labels

    assert distinct_labels([11.0, 11.03]) == ["11.00", "11.03"]
    assert distinct_labels([7.0001, 7.0002, None]) == ["7.0001", "7.0002", "n/a"]
    assert distinct_labels([0.735, 0.367]) == ["0.735", "0.367"]
    assert distinct_labels([0.25, -0.5], sign="+") == ["+0.250", "-0.500"]
    assert distinct_labels([float("nan")]) == ["n/a"]
