"""Hostile files and inputs (issue 28, items 9, 10, 14 and 15): each is one line that names the file, never a
traceback, a hang or a silently wrong result."""

from __future__ import annotations

import json
import math
import os
import shutil
import struct

import pytest
from cli_runner import run_cli

import probes
from probes.errors import ProbesError

# Hostile JSON, none of it the issue's own examples: each must be one line naming the file.
DEEP = "[" * 3000 + "]" * 3000  # past Python's recursion limit: RecursionError in json.loads
DEEP_OBJECT = '{"a": ' * 70 + "1" + "}" * 70  # within Python's limit, past ours
HUGE_INT = "7" * 4500  # past Python's 4300-digit limit: ValueError in json.loads
LONG_FLOAT = "0." + "3" * 150  # a number no file of probes' holds
HOSTILE = {"deep": DEEP, "deep_object": DEEP_OBJECT, "huge_int": HUGE_INT, "long_float": LONG_FLOAT}
SAID = {
    "deep": "nested more than 64 levels",
    "deep_object": "nested more than 64 levels",
    "huge_int": "number longer than 100 characters",
    "long_float": "number longer than 100 characters",
}


def _one_line(e: BaseException, *words) -> None:
    text = str(e)
    assert "\n" not in text and len(text) < 400, text
    for w in words:
        assert w in text, (w, text)


def _safetensors(path, header: str, data: bytes = b"") -> None:
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _lens_folder(root, config_text: str):
    d = root / "lens"
    d.mkdir()
    (d / "config.json").write_text(config_text)
    (d / "translators.safetensors").write_bytes(b"")
    return d


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_every_json_probes_reads_is_one_line_naming_the_file(kind, tiny, tiny_dir, tmp_path):
    from probes.core.dataset import Dataset, DatasetError
    from probes.errors import ModelLoadError
    from probes.report import check_report_dir
    from probes.studies.capture.read import load_activations
    from probes.studies.capture.shards import read_index
    from probes.studies.lens.tuned import TunedLensError, read_config

    bad = HOSTILE[kind]
    said = SAID[kind]

    # a JSONL dataset line, named by its line
    data = tmp_path / "texts.jsonl"
    data.write_text('{"text": "fine"}\n{"text": "also fine", "extra": ' + bad + "}\n")
    with pytest.raises(DatasetError) as e:
        Dataset(str(data)).check()
    _one_line(e.value, "texts.jsonl:2", said)

    # a tuned lens's config.json
    lens = _lens_folder(tmp_path, '{"format": "probes-tuned-lens", "training": ' + bad + "}")
    with pytest.raises(TunedLensError) as e:
        read_config(lens)
    _one_line(e.value, str(lens / "config.json"), said)

    # a report's manifest, read when --force would replace the folder
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("old")
    (report / ".probes-report.json").write_text('{"files": ' + bad + "}")
    with pytest.raises(ProbesError) as e:
        check_report_dir(report, force=True)
    _one_line(e.value, ".probes-report.json", said)
    assert (report / "report.md").read_text() == "old"

    # a dataset capture's index.json
    states = tmp_path / "states"
    states.mkdir()
    (states / "index.json").write_text('{"format": "probes.activation_shards/1", "shards": ' + bad + "}")
    for read in (read_index, load_activations):
        with pytest.raises(ProbesError) as e:
            read(states)
        _one_line(e.value, str(states / "index.json"), said)

    # a capture file's metadata (safetensors metadata values are JSON strings)
    from safetensors.torch import load_file, save_file

    good = tmp_path / "good.safetensors"
    probes.capture(tiny, "Hi there").save(good)
    meta = dict(__import__("safetensors").safe_open(str(good), "pt").metadata())
    hostile = tmp_path / "meta.safetensors"
    save_file(load_file(good), hostile, metadata={**meta, "token_strings": bad})
    with pytest.raises(ProbesError) as e:
        load_activations(hostile)
    _one_line(e.value, str(hostile), "token_strings", said)

    # a checkpoint's config.json and its safetensors header (read before safetensors parses it)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(config)[:-1] + ', "extra": ' + bad + "}")
    with pytest.raises(ModelLoadError) as e:
        probes.load(str(ckpt))
    _one_line(e.value, "config.json", said)
    (ckpt / "config.json").write_text(json.dumps(config))
    weights = ckpt / "model.safetensors"
    raw = weights.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header)[:-1] + ', "hostile": ' + bad + "}"
    _safetensors(weights, text, raw[8 + n :])
    with pytest.raises(ModelLoadError) as e:
        probes.load(str(ckpt))
    _one_line(e.value, str(weights), said)


def test_the_reader_limits_size_and_refuses_what_is_not_a_json_file(tmp_path):
    from probes.jsonread import parse_json, read_json

    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 600 + "1]")
    assert len(read_json(big)) == 601
    with pytest.raises(ProbesError) as e:
        read_json(big, max_bytes=1000)
    _one_line(e.value, str(big), "more than 1,000 bytes")
    with pytest.raises(ProbesError) as e:
        read_json(tmp_path)
    _one_line(e.value, str(tmp_path), "a folder")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # no writer: reading it would block for good
    with pytest.raises(ProbesError) as e:
        read_json(fifo)
    _one_line(e.value, str(fifo), "not a regular file")
    with pytest.raises(ProbesError) as e:
        read_json("/dev/zero")
    _one_line(e.value, "/dev/zero", "not a regular file")
    with pytest.raises(ProbesError) as e:
        read_json(tmp_path / "missing.json")
    _one_line(e.value, "missing.json", "cannot read it")
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(ProbesError) as e:
        read_json(bad)
    _one_line(e.value, str(bad), "not UTF-8")
    # brackets, braces and digits inside strings are text, not nesting or numbers
    text = "[{" * 500 + "9" * 500
    assert parse_json('{"t": "' + text + '\\""}', "x") == {"t": text + '"'}
    assert parse_json("[" * 64 + "]" * 64, "x") is not None  # the limit itself is read
    with pytest.raises(ProbesError, match=r"^x: not valid JSON \(.*line 1 column"):
        parse_json('{"a": [1, 2}', "x")


def test_a_hostile_checkpoint_header_is_one_line_in_the_cli(tiny_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, ckpt)
    weights = ckpt / "model.safetensors"
    raw = weights.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    _safetensors(weights, raw[8 : 8 + n].decode().rstrip()[:-1] + ', "x": ' + DEEP_OBJECT + "}", raw[8 + n :])
    r = run_cli("info", "-m", ckpt)
    errors = [ln for ln in r.stderr.splitlines() if not ln.startswith("loading")]
    assert r.exit_code == 2 and len(errors) == 1 and "Traceback" not in r.output, r.output
    assert str(weights) in errors[0] and "nested more than 64" in errors[0]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"skipped_blocks": [2, 11]}, ["skipped_blocks [2, 11]", "11 is not a block of 4 (0-3)"]),
        ({"skipped_blocks": [-1]}, ["-1 is not a block of 4"]),
        ({"skipped_blocks": ["b"]}, ["'b' is not a block of 4"]),
        ({"skipped_blocks": [True]}, ["True is not a block of 4"]),
        ({"skipped_blocks": [1, 1]}, ["a block is listed twice"]),
        ({"skipped_blocks": "1"}, ["'skipped_blocks' is missing or not a list"]),
        ({"n_layers": "4"}, ["'n_layers' must be a positive integer, got '4'"]),
        ({"d_model": 0}, ["'d_model' must be a positive integer, got 0"]),
        ({"training": [1]}, ["'training' is not a record"]),
    ],
)
def test_a_tuned_lens_config_is_validated_before_use(change, words, tiny, tiny_dir, tmp_path):
    from probes.cli.common import Target
    from probes.studies.lens.tuned import TunedLens, TunedLensError, load_tuned_lens

    folder = TunedLens.identity(tiny).save(tmp_path / "lens")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TunedLensError) as e:
        load_tuned_lens(folder, tiny)
    _one_line(e.value, str(folder / "config.json"), *words)
    with pytest.MonkeyPatch.context() as mp:  # the CLI: before the model loads
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        r = run_cli("lens", "-m", tiny_dir, "--prompt", "Hi", "--tuned", folder)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and all(w in r.stderr for w in words), r.output


@pytest.mark.parametrize(
    "shapes",
    [
        {"weight": [4, 64, 32], "bias": [4, 64]},  # another width
        {"weight": [3, 64, 64], "bias": [3, 64]},  # one translator short
        {"weight": [4, 64, 64]},  # no bias
        {"weight": [1 << 40, 1 << 40, 1 << 40], "bias": [4, 64]},  # a shape no memory holds
    ],
)
def test_translators_of_the_wrong_shape_are_refused_from_the_header(shapes, tiny, tiny_dir, tmp_path):
    from probes.cli.common import Target
    from probes.studies.lens.tuned import TunedLens, TunedLensError, load_tuned_lens

    folder = TunedLens.identity(tiny).save(tmp_path / "lens")
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 4 * min(math.prod(shape), 64 * 64 * 4)  # (bytes enough for the true shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    _safetensors(folder / "translators.safetensors", json.dumps(header), b"\0" * offset)
    with pytest.raises(TunedLensError) as e:
        load_tuned_lens(folder, tiny)
    _one_line(e.value, str(folder / "translators.safetensors"), "weight [4, 64, 64], bias [4, 64]")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        r = run_cli("lens", "-m", tiny_dir, "--prompt", "Hi", "--tuned", folder)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "translators.safetensors" in r.stderr, r.output


@pytest.fixture
def captured(tiny, tmp_path):
    data = tmp_path / "texts.txt"
    data.write_text("Now is the winter\nof our discontent\nmade glorious summer\n")
    folder = tmp_path / "states"
    probes.capture(tiny, probes.Dataset(f"FILE:{data}"), out=folder, hooks=["resid_post"])
    return data, folder


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda x: x.pop("shapes"), "'shapes' is missing or not a dict"),
        (lambda x: x.pop("texts"), "'texts' is missing or not a list"),
        (lambda x: x.update(n_rows="12"), "'n_rows' is missing or not a int"),
        (lambda x: x["model_source"].pop("sha256"), "'model_source' lacks"),
        (lambda x: x["shards"][0].pop("windows"), "shard entry 0 lacks"),
        (lambda x: x["shards"][0].update(file="../texts.txt"), "shard entry 0 lacks"),
        (lambda x: x["shards"][0]["windows"][0].pop(), "shard entry 0 lacks"),
        (lambda x: x["texts"][1].pop("windows"), "a text entry lacks"),
    ],
)
def test_an_index_lacking_keys_is_one_line(damage, words, captured, tiny_dir):
    from probes.cli.common import Target
    from probes.studies.capture.read import load_activations

    data, folder = captured
    index = json.loads((folder / "index.json").read_text())
    damage(index)
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ProbesError) as e:
        load_activations(folder)
    _one_line(e.value, str(folder / "index.json"), "damaged capture index", words)
    with pytest.MonkeyPatch.context() as mp:  # resuming it in the CLI: one line before the model loads
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        r = run_cli("capture", "-m", tiny_dir, "--dataset", data, "--out", folder, "--hooks", "resid_post")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.output


def test_an_index_that_is_a_folder_is_one_line_and_never_removed(captured, tiny, tiny_dir):
    from probes.studies.capture.read import load_activations

    data, folder = captured
    (folder / "index.json").unlink()
    (folder / "index.json").mkdir()
    (folder / "index.json" / "notes.txt").write_text("mine")
    with pytest.raises(ProbesError) as e:
        load_activations(folder)
    _one_line(e.value, str(folder / "index.json"), "a folder")
    for force in (False, True):
        with pytest.raises(ProbesError) as e:
            probes.capture(
                tiny, probes.Dataset(f"FILE:{data}"), out=folder, hooks=["resid_post"], force=force
            )
        _one_line(e.value, str(folder / "index.json"), "is a folder")
        extra = ["--force"] if force else []
        r = run_cli("capture", "-m", tiny_dir, "--dataset", data, "--out", folder, *extra)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "is a folder" in r.stderr, r.output
    assert (folder / "index.json" / "notes.txt").read_text() == "mine"


def test_output_paths_through_symlinks_that_lead_nowhere_are_one_line(tiny, tmp_path):
    from probes.io import check_dir, check_output
    from probes.studies.lens.tuned import TunedLens

    loop = tmp_path / "a"
    loop.symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    gone = tmp_path / "gone"
    gone.symlink_to(tmp_path / "no" / "where")
    cases = [(loop, "is a symlink loop"), (loop / "deeper", "is a symlink loop")]
    cases += [(gone, "which is missing"), (gone / "x", "which is missing")]
    for out, said in cases:
        for write in (
            lambda out: check_dir(out, "out"),
            lambda out: TunedLens.identity(tiny).save(out),
            lambda out: probes.capture(tiny, ["one text"], out=out),
        ):
            with pytest.raises(ProbesError) as e:
                write(out)
            _one_line(e.value, f"out={str(out)!r}", said)
    with pytest.raises(ProbesError) as e:
        check_output(loop / "file.safetensors")
    _one_line(e.value, "cannot write", "is a symlink loop")
    with pytest.raises(ProbesError) as e:
        probes.capture(tiny, "Hi").save(gone / "file.safetensors")
    _one_line(e.value, "cannot write", f"{str(gone)!r} is a symlink to", "which is missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "gone"]


@pytest.mark.parametrize(
    "line, said",
    [
        ('{"text": "half a pair \\udc80 here"}', "U+DC80 at character 13"),
        ('{"text": "ends high \\udbff"}', "U+DBFF at character 11"),
        ('{"text": "\\ude00 first"}', "U+DE00 at character 1"),
    ],
)
def test_a_text_holding_a_lone_surrogate_is_refused_by_check_with_its_line(line, said, tiny_dir, tmp_path):
    from probes.cli.common import Target
    from probes.core.dataset import Dataset, DatasetError

    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "fine \\ud83d\\ude00 (a pair is one character)"}\n' + line + "\n")
    with pytest.raises(DatasetError) as e:
        Dataset(str(data)).check()
    _one_line(e.value, "data.jsonl:2", "lone surrogate", said)
    with pytest.raises(DatasetError, match="text 1: the text holds a lone surrogate"):
        Dataset(["fine", json.loads(line)["text"]]).check()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Target, "load", lambda self: pytest.fail("the model was loaded"))
        for args in (["lens", "--dataset", data], ["capture", "--dataset", data, "--out", tmp_path / "s"]):
            r = run_cli(*args, "-m", tiny_dir)
            assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "data.jsonl:2" in r.stderr, r.output


def _probes(args, env, **kw):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from probes.cli.app import entry; entry()", *args]
    return subprocess.run(cmd, capture_output=True, env={**os.environ, **env}, timeout=300, **kw)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_json_output_is_valid_json_whatever_stdout_encodes(encoding, tiny_dir):
    prompt = "Ωmega naïve 東京"
    r = _probes(
        ["next-token", "-m", str(tiny_dir), "--prompt", prompt, "--json"], {"PYTHONIOENCODING": encoding}
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode(encoding)  # what the stream wrote is in its own encoding
    assert json.loads(out)["prompt"] == prompt


def test_utf8_arguments_are_text_under_the_c_locale(tiny_dir):
    c_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    prompt = "Ωmega naïve 東京"
    r = _probes(["next-token", "-m", str(tiny_dir), "--prompt", prompt, "--json"], c_locale)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.decode("ascii"))["prompt"] == prompt
    r = _probes(["embed", "-m", str(tiny_dir), "--common", "café,naïve", "--rare", "dog", "--json"], c_locale)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.decode("ascii"))["groups"]["common"] == ["café", "naïve"]
    # bytes that are not UTF-8 either: still one line
    r = _probes([b"next-token", b"-m", str(tiny_dir).encode(), b"--prompt", b"caf\xe9"], c_locale)
    errors = [ln for ln in r.stderr.decode().splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "not UTF-8" in errors[0], r.stderr


def test_a_shards_token_strings_nested_too_deep_are_one_line(captured):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from probes.studies.capture.read import load_activations

    _, folder = captured
    shard = folder / "shard-00000.safetensors"
    meta = dict(safe_open(str(shard), "pt").metadata())
    save_file(load_file(shard), shard, metadata={**meta, "str_tokens": DEEP_OBJECT})
    acts = load_activations(folder)  # the index is fine: nothing is read from the shard yet
    with pytest.raises(ProbesError) as e:
        acts[0]
    _one_line(e.value, str(shard), "str_tokens", "nested more than 64")


@pytest.mark.parametrize(
    "args",
    [
        ["lens", "--dataset", "{fifo}"],
        ["capture", "--dataset", "FILE:{fifo}", "--out", "{tmp}/states"],
        ["prune", "--dataset", "{zero}"],
        ["prune", "--eval-text", "{fifo}"],
        ["tuned-lens", "train", "--dataset", "{zero}", "--out", "{tmp}/lens"],
        ["generate", "--prompt", "FILE:{fifo}"],
        ["generate", "--prompts", "FILE:{fifo}"],
    ],
)
def test_a_fifo_or_a_device_as_input_is_one_line_and_never_blocks(args, tiny_dir, tmp_path):
    """#28 items 7, 8: a FIFO blocks for good and /dev/zero never ends; both are refused before any read."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo, zero="/dev/zero", tmp=tmp_path) for a in args]
    r = run_cli(*args, "-m", tiny_dir)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "not a regular file" in r.stderr


def test_a_text_longer_than_the_bound_is_named_not_read_whole(tmp_path):
    """#28 item 8: one huge line (or paragraph, or text) is refused with where it is, the file read in
    bounded pieces."""
    from probes.core.dataset import MAX_TEXT_BYTES, Dataset, DatasetError

    path = tmp_path / "t.txt"
    path.write_bytes(b"fine\n" + b"y" * (MAX_TEXT_BYTES + 7) + b"\nafter\n")
    with pytest.raises(DatasetError, match=r"t\.txt:2: the line is longer than 1 MiB"):
        Dataset(path).check()
    path.write_bytes(b"a\n\n" + b"z" * (MAX_TEXT_BYTES // 2) + b"\n" + b"z" * (MAX_TEXT_BYTES // 2) + b"\n")
    with pytest.raises(DatasetError, match=r"t\.txt:3: the paragraph is longer"):
        Dataset(path, split="paragraphs").check()
    path.write_bytes(b"y" * MAX_TEXT_BYTES + b"\r\n")  # exactly the bound, with its line ending: read
    assert Dataset(path).check() == 1
    with pytest.raises(DatasetError, match="text 1: the text is longer"):
        Dataset(["ok", "w" * (MAX_TEXT_BYTES + 1)]).check()


def test_safetensors_beside_the_weights_are_ignored_and_shards_are_read_as_their_index_says(
    tiny_dir, tmp_path
):
    """#28 item 17: the files transformers reads are the model's weights (model.safetensors, or the shards
    its index names); another safetensors file in the folder (a capture, a lens) is ignored with a note."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from probes.core.checkpoint import check_checkpoint
    from probes.core.prompt import ProbesWarning
    from probes.errors import ModelLoadError

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, ckpt)
    save_file({"resid": torch.zeros(3, 4)}, ckpt / "states.safetensors")
    with pytest.warns(ProbesWarning, match="ignoring states.safetensors: not the model's weights"):
        model = probes.load(str(ckpt))
    ids = torch.tensor([[1, 2, 3]])
    ref = probes.load(str(tiny_dir))
    torch.testing.assert_close(model(ids), ref(ids))

    (ckpt / "model.safetensors").rename(ckpt / "weights.safetensors")
    with pytest.raises(ModelLoadError, match="no model.safetensors .* are not named as the model's weights"):
        check_checkpoint(ckpt)

    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tiny_dir).save_pretrained(sharded, max_shard_size="100KB")
    for f in tiny_dir.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "merges", "special")):
            shutil.copy(f, sharded / f.name)
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1
    check_checkpoint(sharded)  # every shard the index names, and only those
    shards[-1].unlink()
    with pytest.raises(ModelLoadError, match=f"{shards[-1].name} is missing"):
        check_checkpoint(sharded)
