"""The CLI as a user meets it: JSON outputs, --help without torch, and a table of bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from cli_runner import run_cli


def run(*args):
    return run_cli(*[str(a) for a in args])


def test_help_does_not_import_torch():
    code = (
        "import sys; from probes.cli.app import app; print('torch' in sys.modules, 'transformers' in "
        "sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_every_command_has_help():
    for cmd in ("info", "generate", "next-token", "prune", "lens", "embed", "capture", "report"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "--model" in r.output and "--threads" in r.output, cmd
        assert "<int>" in r.output and "<bool>" not in r.output, cmd  # a flag takes no value: no type shown


def test_help_text_renders_cleanly():
    # Typer's rich help keeps a docstring's line breaks, so a hard-wrapped paragraph prints as ragged
    # lines; and a whitespace default (generate's newline prompt) prints as a broken "[default: ]".
    import typer.main

    from probes.cli.app import app

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        for paragraph in cmd.help.strip().split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{name}: hard-wrapped help paragraph {paragraph[:40]!r}"
        for param in cmd.params:
            blank = isinstance(param.default, str) and not param.default.strip()
            assert not (blank and param.show_default is not False), (
                f"{name} {param.name}: blank default shown"
            )


def test_info_json(tiny_dir):
    r = run("info", "--model", tiny_dir, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["n_layers"] == 4 and d["d_model"] == 64 and d["path"] == str(tiny_dir.resolve())
    assert "hook_resid_pre" in d["block_hook_families"]


def test_generate_json_is_reproducible(tiny_dir):
    args = [
        "generate",
        "--model",
        tiny_dir,
        "--prompt",
        "Hi",
        "-n",
        "2",
        "--max-new-tokens",
        "8",
        "--json",
        "--seed",
        "5",
    ]
    a, b = run(*args), run(*args)
    assert a.exit_code == 0, a.output
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["samples"] == db["samples"] and len(da["samples"]) == 2
    assert da["prompt_tokens"][0] == 0 and da["config"]["seed"] == 5 and da["timing"]["new_tokens"] == 16
    assert da["versions"]["transformer-lens"] and da["model_source"]["sha256"]
    nb = json.loads(run(*args, "--no-bos").stdout)
    assert nb["prompt_tokens"][0] != 0


def test_generate_with_skip_and_stream(tiny_dir):
    r = run(
        "generate", "--model", tiny_dir, "--prompt", "Hi", "--max-new-tokens", "5", "--skip", "odd", "--json"
    )
    assert json.loads(r.stdout)["skipped_blocks"] == [1, 3]
    r = run("generate", "--model", tiny_dir, "--prompt", "Hi", "--max-new-tokens", "5", "--stream", "-n", "2")
    assert r.exit_code == 0 and "sample 2/2" in r.stdout


def test_next_token_json_and_plot(tiny_dir, tmp_path):
    png = tmp_path / "next.png"
    r = run(
        "next-token",
        "--model",
        tiny_dir,
        "--prompt",
        "The",
        "--temperature",
        "0.1,10",
        "--top-k",
        "2,0",
        "--plot",
        png,
        "--json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [s["label"] for s in d["settings"]] == ["T=0.1, top-k=2", "T=0.1", "T=10, top-k=2", "T=10"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_prune_json_and_text(tiny_dir, tmp_path):
    ev = tmp_path / "eval.txt"
    ev.write_text("Shall I compare thee to a summer's day? Thou art more lovely and more temperate. " * 3)
    r = run(
        "prune",
        "--model",
        tiny_dir,
        "--skip",
        "odd",
        "--skip",
        "last-half",
        "--max-new-tokens",
        "12",
        "--eval-text",
        ev,
        "--json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [x["name"] for x in d["runs"]] == ["full", "odd", "last-half"]
    assert d["runs"][1]["skipped_blocks"] == [1, 3] and d["runs"][2]["kept_blocks"] == [0, 1]
    full = d["runs"][0]["metrics"]
    assert full["tf_kl"] == pytest.approx(0, abs=1e-6) and full["tf_top1_agreement"] == 1
    png = tmp_path / "p.png"
    r = run("prune", "--model", tiny_dir, "--max-new-tokens", "8", "--eval-text", ev, "--plot", png)
    assert r.exit_code == 0 and "FULL MODEL" in r.stdout and "SKIP odd" in r.stdout
    from PIL import Image

    with Image.open(png) as image:  # a real figure of page width, not an empty file
        assert image.format == "PNG" and image.width >= 800 and image.height >= 300


def test_prune_sweep(tiny_dir, tmp_path):
    ev = tmp_path / "eval.txt"
    ev.write_text("To be, or not to be, that is the question. " * 5)
    r = run("prune", "--model", tiny_dir, "--sweep", "--eval-text", ev, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert sorted(d["ranking_by_loss_increase"]) == [0, 1, 2, 3]
    assert [s["name"] for s in d["strategies"]][:4] == ["odd", "even", "first-half", "last-half"]


def _checkpoint_variants(tiny_dir, tmp_path):
    trunc = tmp_path / "trunc"
    shutil.copytree(tiny_dir, trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[:1000])
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_dir, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    empty = tmp_path / "empty"
    empty.mkdir()
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep me")
    full_dir = tmp_path / "study"
    full_dir.mkdir()
    (full_dir / "report.md").write_text("old")
    existing_png = tmp_path / "old.png"
    existing_png.write_bytes(b"keep me")
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "nowhere")
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "norms.png").write_bytes(b"keep me")
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "round" / "loop")
    (tmp_path / "round").symlink_to(tmp_path)  # loop -> round/loop -> loop
    gone = tmp_path / "gone"
    gone.symlink_to(tmp_path / "nowhere" / "folder")
    # hostile JSON and text (#28 items 9, 10, 14, 15)
    files = {
        "deep_jsonl": '{"text": "fine"}\n{"text": "ok", "x": ' + "[" * 900 + "]" * 900 + "}\n",
        "long_jsonl": '{"text": "ok", "n": 1' + "0" * 5000 + "}\n",
        "surrogate_jsonl": '{"text": "fine"}\n{"text": "half \\udfff pair"}\n',
    }
    for name, text in files.items():
        (tmp_path / f"{name}.jsonl").write_text(text)
    lenses = {
        "lens_block": {"skipped_blocks": [6]},
        "lens_word": {"skipped_blocks": ["x"]},
        "lens_size": {"n_layers": -4},
        "lens_deep": None,
    }
    for name, change in lenses.items():
        d = tmp_path / name
        d.mkdir()
        config = {"format": "probes-tuned-lens", "version": 1, "model_sha256": "0" * 16, "n_layers": 4}
        config.update({"d_model": 64, "skipped_blocks": [], "training": {}, **(change or {})})
        text = json.dumps(config) if change else '{"format": ' + "{" * 80 + "}" * 80 + "}"
        (d / "config.json").write_text(text)
        (d / "translators.safetensors").write_bytes(b"")
    index_dir = tmp_path / "index_dir"
    (index_dir / "index.json").mkdir(parents=True)
    index_keys = tmp_path / "index_keys"
    index_keys.mkdir()
    (index_keys / "index.json").write_text('{"format": "probes.activation_shards/1", "complete": true}')
    index_deep = tmp_path / "index_deep"
    index_deep.mkdir()
    (index_deep / "index.json").write_text(
        '{"format": "probes.activation_shards/1", "x": ' + "[" * 70 + "]" * 70 + "}"
    )
    report_deep = tmp_path / "report_deep"
    report_deep.mkdir()
    (report_deep / "report.md").write_text("old")
    (report_deep / ".probes-report.json").write_text('{"files": ' + "[" * 99 + "]" * 99 + "}")
    return dict(
        **{name: tmp_path / f"{name}.jsonl" for name in files},
        **{name: tmp_path / name for name in lenses},
        index_dir=index_dir,
        index_keys=index_keys,
        index_deep=index_deep,
        report_deep=report_deep,
        loop=loop,
        gone=gone,
        trunc=trunc,
        pickled=pickled,
        empty=empty,
        existing=existing,
        full_dir=full_dir,
        existing_png=existing_png,
        dangling=dangling,
        figs=figs,
    )


BAD = [
    # (args, words the message must contain); {tiny} is the tiny checkpoint, {x} a prepared path
    (["prune", "-m", "{tiny}", "--skip", "99"], ["out of range", "4 blocks"]),
    (["prune", "-m", "{tiny}", "--skip", "banana"], ["unknown layer spec", "odd"]),
    (["prune", "-m", "{tiny}", "--skip", ""], ["empty layer spec"]),
    (["prune", "-m", "{tiny}", "--skip", "3-1"], ["reversed"]),
    (["prune", "-m", "{tiny}", "--keep", "7"], ["out of range"]),
    (["generate", "-m", "{tiny}", "--skip", "4"], ["out of range", "0-3"]),
    (["lens", "-m", "{tiny}", "--skip", "banana", "--prompt", "Hi"], ["unknown layer spec"]),
    (
        ["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{tmp}/a.safetensors", "--layers", "0-9"],
        ["out of range"],
    ),
    (["generate", "--temperature", "-1"], ["temperature", ">= 0"]),
    (["generate", "--top-k", "-3"], ["top-k", ">= 1"]),
    (["generate", "--top-p", "0"], ["top-p", "(0, 1]"]),
    (["generate", "--top-p", "1.5"], ["top-p"]),
    (["generate", "--num-samples", "0"], ["num-samples", ">= 1"]),
    (["generate", "--max-new-tokens", "0"], ["max-new-tokens", ">= 1"]),
    (["generate", "-m", "{tiny}", "--prompt", "", "--no-bos"], ["prompt is empty"]),
    (["generate", "-m", "{tiny}", "--prompt", "FILE:{tmp}/nowhere.txt"], ["cannot read prompt file"]),
    (["next-token", "--temperature", "abc"], ["--temperature must be a comma list like 0.1,1,10"]),
    (["next-token", "--temperature", ""], ["--temperature must be a comma list"]),
    (["next-token", "--top-k", "x"], ["--top-k must be a comma list like 2,200"]),
    (["next-token", "--top-p", "2"], ["top-p"]),
    (["next-token", "--temperature", "0.1,,10"], ["--temperature", "empty item"]),
    (["generate", "--temperature", "0.1,abc"], ["--temperature must be a comma list like 0.1,1,10", "'abc'"]),
    (["generate", "--temperature", "1,-2"], ["temperature", ">= 0"]),
    (["generate", "--top-k", "200,2.5"], ["--top-k must be a comma list", "'2.5'"]),
    (["generate", "--top-k", "200,"], ["--top-k", "empty item"]),
    (["generate", "--top-p", "0.9,1.5"], ["top-p", "(0, 1]"]),
    (["generate", "--temperature", "0.1,1", "--greedy"], ["greedy", "grid of 2 settings", "--sample"]),
    (["generate", "--prompts", "FILE:{tmp}/nowhere.txt"], ["cannot read dataset", "nowhere.txt"]),
    (["generate", "--prompts", "{tmp}/x.txt", "--prompt", "Hi"], ["--prompt and --prompts"]),
    (["generate", "--prompts", "{tmp}/x.txt", "--stream"], ["--stream", "--prompts"]),
    (["generate", "-m", "{tiny}", "--prompts", "{empty}"], ["cannot open dataset"]),
    (
        [
            "capture",
            "-m",
            "{tiny}",
            "--prompt",
            "Hi",
            "--out",
            "{tmp}/b.safetensors",
            "--hooks",
            "resid_pree",
        ],
        ["resid_pre"],
    ),
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{existing}"], ["exists", "--force"]),
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "/proc/probes-test.safetensors"], ["/proc"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--position", "999"], ["position"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--metric", "banana"], ["prob"]),
    (["info", "-m", "gpt2-surely-not-cached-anywhere"], ["Hugging Face Hub", "bundled model"]),
    (["info", "-m", "{empty}"], ["no config.json"]),
    (["info", "-m", "{tmp}/missing-dir"], ["does not exist"]),
    (["info", "-m", "{trunc}"], ["truncated"]),
    (["info", "-m", "{pickled}"], ["pickled", "safetensors"]),
    (["info", "--dtype", "float64"], ["float32, float16, bfloat16"]),
    (["info", "--device", "banana"], ["unknown device"]),
    (["embed", "-m", "{tiny}", "--common", "dog,,city"], ["empty"]),
    (["embed", "-m", "{tiny}", "--rare", ""], ["empty"]),
    (
        ["embed", "-m", "{tiny}", "--token-form", "spaces"],
        ["unknown token form 'spaces'", "first, space, mean, last"],
    ),
    (["embed", "--token-form", ""], ["unknown token form"]),
    (["embed", "--vectors"], ["--vectors", "--json"]),
    (["prune", "-m", "{tiny}", "--eval-text", "{tmp}/nowhere.txt"], ["cannot read --eval-text"]),
    (["prune", "--plot", "{tmp}/plot.txt"], [".png"]),
    (["report", "--out", "{full_dir}"], ["not empty", "--force"]),
    (["report", "--out", "{full_dir}", "--force"], ["not a report folder written by probes"]),
    # broken checkpoints: each one line, never random weights or a traceback
    (["info", "-m", "{cfg_list}"], ["not a JSON object"]),
    (["info", "-m", "{cfg_null}"], ["not a JSON object"]),
    (["info", "-m", "{cfg_number}"], ["not a JSON object"]),
    (["info", "-m", "{cfg_nested}"], ["config.json", "nested more than 64 levels"]),
    (["info", "-m", "{cfg_str_layers}"], ["n_layer must be a positive integer"]),
    (["info", "-m", "{cfg_eps_nan}"], ["layer_norm_epsilon"]),
    (["info", "-m", "{missing_tensor}"], ["lack 1 tensor", "h.2.attn.c_attn.weight"]),
    (["info", "-m", "{extra_tensor}"], ["does not have", "surprise"]),
    (["info", "-m", "{nan_weights}"], ["NaN or inf", "c_fc"]),
    (["info", "-m", "{big_tokenizer}"], ["tokenizer has", "embedding"]),
    (["generate", "-m", "{missing_tensor}", "--prompt", "Hi"], ["lack"]),
    # sampling values outside what works
    (["generate", "--temperature", "1e-40"], ["temperature", "1e-06"]),
    (["generate", "--temperature", "nan"], ["temperature"]),
    (["generate", "--temperature", "inf"], ["temperature"]),
    (["generate", "--top-p", "1e-300"], None),
    (["next-token", "--temperature", "1e-300"], ["temperature"]),
    (["generate", "--seed", "18446744073709551616"], ["seed"]),
    (["generate", "--seed", "-9223372036854775809"], ["seed"]),
    (
        [
            "capture",
            "--prompt",
            "Hi",
            "--out",
            "{tmp}/c.safetensors",
            "--generate",
            "2",
            "--seed",
            "99999999999999999999",
        ],
        ["seed"],
    ),
    # usage errors: one line with the usage hint, like every other error
    (["generate", "--max-new-tokens", "abc"], ["--max-new-tokens", "probes generate --help"]),
    (["generate", "--no-such-option"], ["No such option", "probes generate --help"]),
    (["no-such-command"], ["No such command"]),
    (["lens", "--prompt", "Hi", "--position", "1.5"], ["--position"]),
    # paths
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{tmp}/a\nb/c.safetensors"], ["\\n"]),
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{tmp}/nul\x00.safetensors"], ["NUL"]),
    (["generate", "-m", "{tiny}", "--prompt", "FILE:{tmp}/x\x00y.txt"], ["NUL"]),
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{dangling}"], ["exists", "--force"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--plot", "{existing_png}"], ["exists", "--force"]),
    (["prune", "-m", "{tiny}", "--plot", "{existing_png}"], ["exists", "--force"]),
    (["next-token", "-m", "{tiny}", "--plot", "{existing_png}"], ["exists", "--force"]),
    (
        [
            "capture",
            "-m",
            "{tiny}",
            "--prompt",
            "Hi",
            "--out",
            "{tmp}/d.safetensors",
            "--plot",
            "{existing_png}",
        ],
        ["exists", "--force"],
    ),
    (["embed", "-m", "{tiny}", "--plot-dir", "{figs}"], ["norms.png", "--force"]),
    (["generate", "-m", "{tiny}", "--prompt", "caf\udce9"], ["not UTF-8"]),
    # option conflicts, before the model loads
    (["generate", "--skip", "odd", "--keep", "1"], ["either a skip spec or a keep spec"]),
    (["lens", "--prompt", "Hi", "--seed", "3"], ["--seed", "apply only with --generate"]),
    (["lens", "--prompt", "Hi", "--generate", "3", "--position", "2"], ["--position"]),
    (["lens", "--prompt", "Hi", "--position", "5000"], ["position 5000 is out of range"]),
    (["lens", "--prompt", "Hi", "--generate", "0"], ["--generate 0"]),
    (["capture", "--prompt", "Hi", "--out", "{tmp}/h.safetensors", "--hooks", "resid_pr"], ["resid_pre"]),
    # capture --dataset: checked before loading ({existing} holds one line of text: a dataset of one text)
    (
        ["capture", "--dataset", "{tmp}/none.txt", "--out", "{tmp}/states"],
        ["cannot read dataset", "none.txt"],
    ),
    (
        ["capture", "--dataset", "{tmp}/none.txt", "--prompt", "Hi", "--out", "{tmp}/states"],
        ["--prompt and --dataset"],
    ),
    (
        ["capture", "--dataset", "{tmp}/none.txt", "--out", "{tmp}/states", "--generate", "3"],
        ["--generate", "one --prompt"],
    ),
    (
        ["capture", "--prompt", "Hi", "--out", "{tmp}/x.safetensors", "--store-dtype", "float16"],
        ["--store-dtype", "only with --dataset"],
    ),
    (
        ["capture", "--dataset", "{tmp}/none.txt", "--out", "{tmp}/states", "--store-dtype", "float8"],
        ["float8", "bfloat16"],
    ),
    (
        ["capture", "--dataset", "{tmp}/none.txt", "--out", "{tmp}/states", "--shard-size", "0"],
        ["--shard-size", "positive"],
    ),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{full_dir}"],
        ["no index.json", "--force"],
    ),
    (["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{existing}"], ["is a file"]),
    (["prune", "--sweep", "--max-new-tokens", "5"], ["--sweep", "--max-new-tokens"]),
    (["generate", "--stream", "--json"], ["--stream"]),
    (["prune", "--num-samples", "3"], ["--sample"]),
    # lens over a dataset: every check before the model loads
    (["lens", "-m", "{tiny}", "--dataset", "FILE:{tmp}/nowhere.txt"], ["cannot read dataset", "nowhere.txt"]),
    (["lens", "-m", "{tiny}", "--dataset", "{empty}"], ["cannot open dataset"]),
    (["lens", "--dataset", "{tmp}/x.txt", "--prompt", "Hi"], ["--prompt", "--dataset", "not both"]),
    (["lens", "--dataset", "{tmp}/x.txt", "--generate", "3"], ["--generate", "not used with --dataset"]),
    (["lens", "--dataset", "{tmp}/x.txt", "--position", "2"], ["--position", "not used with --dataset"]),
    (["lens", "--max-texts", "3", "--prompt", "Hi"], ["--max-texts", "--dataset"]),
    (["lens", "--dataset", "{tmp}/x.txt", "--max-texts", "0"], ["max-texts", ">= 1"]),
    (["lens", "--dataset", "{tmp}/x.txt", "--split", "words"], ["split", "lines, paragraphs"]),
    (
        ["lens", "--dataset", "{tmp}/x.txt", "--compare-skip", "1", "--skip", "2"],
        ["--compare-skip", "--skip"],
    ),
    # prune over a dataset, and --no-eval: every check before the model loads
    (
        ["prune", "-m", "{tiny}", "--dataset", "FILE:{tmp}/nowhere.txt"],
        ["cannot read dataset", "nowhere.txt"],
    ),
    (
        ["prune", "--dataset", "{tmp}/x.txt", "--eval-text", "{tmp}/x.txt"],
        ["either --eval-text", "--dataset"],
    ),
    (["prune", "--max-texts", "3"], ["--max-texts", "--dataset"]),
    (["prune", "--dataset", "{tmp}/x.txt", "--max-texts", "0"], ["max-texts", ">= 1"]),
    (["prune", "--no-eval", "--eval-text", "{tmp}/x.txt"], ["--no-eval", "--eval-text", "ignored"]),
    (["prune", "--sweep", "--no-eval"], ["--sweep", "--no-eval"]),
    (["report", "--out", "{tmp}/r", "--no-eval", "--eval-text", "{tmp}/x.txt"], ["--no-eval", "--eval-text"]),
    # symlinks that lead nowhere as outputs: one line before any work (#28 item 10)
    (["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{loop}"], ["--out", "symlink loop"]),
    (["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{loop}/sub"], ["symlink loop"]),
    (["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{gone}"], ["symlink to", "missing"]),
    (["capture", "-m", "{tiny}", "--prompt", "Hi", "--out", "{loop}/a.safetensors"], ["symlink loop"]),
    (["embed", "-m", "{tiny}", "--plot-dir", "{loop}"], ["--plot-dir", "symlink loop"]),
    (["embed", "-m", "{tiny}", "--plot-dir", "{gone}/figs"], ["--plot-dir", "which is missing"]),
    (["tuned-lens", "train", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{loop}"], ["symlink loop"]),
    (["report", "-m", "{tiny}", "--out", "{loop}"], ["--out", "symlink loop"]),
    (["report", "-m", "{tiny}", "--out", "{gone}/r"], ["--out", "which is missing"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--plot", "{loop}/x.png"], ["cannot write", "symlink loop"]),
    (["prune", "-m", "{tiny}", "--plot", "{gone}/x.png"], ["cannot write", "which is missing"]),
    # hostile JSON: one line naming the file (#28 item 9)
    (["info", "-m", "{cfg_long_number}"], ["config.json", "number longer than 100 characters"]),
    (["info", "-m", "{header_nested}"], ["model.safetensors: its header", "nested more than 64"]),
    (["generate", "-m", "{header_nested}", "--prompt", "Hi"], ["its header", "nested more than 64"]),
    (["lens", "-m", "{tiny}", "--dataset", "{deep_jsonl}"], ["deep_jsonl.jsonl:2", "nested more than 64"]),
    (["prune", "-m", "{tiny}", "--dataset", "{long_jsonl}"], ["long_jsonl.jsonl:1", "number longer than"]),
    (
        ["tuned-lens", "train", "-m", "{tiny}", "--dataset", "{deep_jsonl}", "--out", "{tmp}/lens"],
        ["deep_jsonl.jsonl:2", "nested"],
    ),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{long_jsonl}", "--out", "{tmp}/states"],
        ["long_jsonl.jsonl:1", "number longer than"],
    ),
    (["generate", "-m", "{tiny}", "--prompts", "{deep_jsonl}"], ["deep_jsonl.jsonl:2", "nested"]),
    (
        ["lens", "-m", "{tiny}", "--prompt", "Hi", "--tuned", "{lens_deep}"],
        ["config.json", "nested more than"],
    ),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{index_deep}"],
        ["index.json", "nested"],
    ),
    (["report", "-m", "{tiny}", "--out", "{report_deep}", "--force"], [".probes-report.json", "nested"]),
    # a capture folder whose index is not an index (#28 item 10)
    (
        ["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{index_dir}"],
        ["index.json is a folder"],
    ),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{index_dir}", "--force"],
        ["index.json is a folder", "even with --force"],
    ),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{existing}", "--out", "{index_keys}"],
        ["index.json", "damaged capture index", "'settings' is missing"],
    ),
    # a tuned lens file that does not fit (#28 item 14), before the model loads
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--tuned", "{lens_block}"], ["6 is not a block of 4 (0-3)"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--tuned", "{lens_word}"], ["'x' is not a block of 4"]),
    (["lens", "-m", "{tiny}", "--prompt", "Hi", "--tuned", "{lens_size}"], ["'n_layers' must be a positive"]),
    (["lens", "-m", "{tiny}", "--dataset", "{existing}", "--tuned", "{lens_block}"], ["skipped_blocks [6]"]),
    # text that is not text (#28 item 15)
    (["lens", "-m", "{tiny}", "--dataset", "{surrogate_jsonl}"], ["surrogate_jsonl.jsonl:2", "U+DFFF"]),
    (
        ["capture", "-m", "{tiny}", "--dataset", "{surrogate_jsonl}", "--out", "{tmp}/states"],
        ["surrogate_jsonl.jsonl:2", "lone surrogate"],
    ),
    (
        ["prune", "-m", "{tiny}", "--dataset", "{surrogate_jsonl}"],
        ["surrogate_jsonl.jsonl:2", "lone surrogate"],
    ),
    (["embed", "-m", "{tiny}", "--common", "dog,caf\udce9"], ["common list", "not UTF-8"]),
    # sizes that are not finite or too big (#28 item 12)
    (
        ["capture", "--dataset", "{existing}", "--out", "{tmp}/states", "--shard-size", "Infinity"],
        ["--shard-size 'Infinity'", "out of range"],
    ),
    (
        ["capture", "--dataset", "{existing}", "--out", "{tmp}/states", "--shard-size", "3e500M"],
        ["--shard-size", "out of range"],
    ),
    (["capture", "--prompt", "Hi", "--out", "{tmp}/m.safetensors", "--max-bytes", "-inf"], ["--max-bytes"]),
    (["capture", "--prompt", "Hi", "--out", "{tmp}/m.safetensors", "--max-bytes", "nan"], ["not a number"]),
    # a full hook name that does not fit the checkpoint, before loading (#28 item 19)
    (
        [
            "capture",
            "-m",
            "{tiny}",
            "--prompt",
            "Hi",
            "--out",
            "{tmp}/h.safetensors",
            "--hooks",
            "blocks.4.hook_q",
        ],
        ["blocks.4.hook_q", "4 blocks (0-3)"],
    ),
]
if not __import__("torch").cuda.is_available():
    BAD.append((["info", "--device", "cuda"], ["no CUDA GPU"]))


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a[:4]) for a, _ in BAD])
def test_bad_input_is_one_clear_line(args, words, tiny_dir, tmp_path, broken):
    paths = _checkpoint_variants(tiny_dir, tmp_path)
    subst = {
        "tiny": str(tiny_dir),
        "tmp": str(tmp_path),
        **{k: str(v) for k, v in {**paths, **broken}.items()},
    }
    if words is None:  # accepted: a value at the edge that must work, not crash
        r = run(*[a.format(**subst) for a in args], "-m", subst["tiny"], "--max-new-tokens", "2")
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        return
    argv = [a.format(**subst) for a in args]
    r = run(*argv)
    assert r.exit_code == 2, (argv, r.output)
    err = r.stderr.strip()
    assert "Traceback" not in r.output and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert r.stdout.strip() == ""
    assert paths["existing"].read_bytes() == b"keep me" and paths["existing_png"].read_bytes() == b"keep me"
    assert (paths["full_dir"] / "report.md").read_text() == "old" and (
        paths["figs"] / "norms.png"
    ).read_bytes() == b"keep me"
    assert paths["dangling"].is_symlink() and not (tmp_path / "~").exists()
