"""Tuned lens: one affine translator per layer, read through the final norm and unembedding, saved for one
model.

Belrose et al. (2023), "Eliciting Latent Predictions from Transformers with the Tuned Lens". Row r
(the stream entering block r, as in `probes.studies.lens.logit`) is read as

    readout(h + W_r (h - mean(h)) + b_r)            W_r (d_model, d_model), b_r (d_model,)

with W_r and b_r zero at the start, so an untrained lens is the logit lens exactly. The last row
is the model's output and gets no translator. The translator's input is centred because the final
LayerNorm ignores the mean direction and TransformerLens' compatibility mode removes it from the
stream anyway: so one lens reads the bridge's stream and transformers' `hidden_states` alike.

Skipped blocks (a lens for a pruned model): rows that hold the same stream (a skipped block passes
its input through) form one run and share the translator of the run's first row; the run that ends
in the last row is the output and gets none. A lens records the blocks skipped while it was
trained. A full model's lens read on a pruned model is what `--compare-skip` draws (the same
translators on both); a pruned model's lens used under other skips warns, since its translators
were fit to an output the model no longer has.

Files: `config.json` (model checksum, shape, skips, training record) and `translators.safetensors`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from probes.errors import ProbesError
from probes.jsonread import read_json
from probes.studies.lens.lenses import UNSET, Lens, LogitLens

FORMAT = "probes-tuned-lens"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "translators.safetensors"
CONFIG_BYTES = 4 << 20  # a lens's config: settings and a few numbers per row
BUNDLED = "bundled"


class TunedLensError(ProbesError):
    """A tuned lens that cannot be used: missing files, another model's lens, a bad config."""


def row_owners(n_layers: int, skipped) -> list[int | None]:
    """Per row (L+1), the translator index it uses: its run's first row, or None for the output's run."""
    gone = set(skipped)
    owner = list(range(n_layers + 1))
    for r in range(1, n_layers + 1):
        if r - 1 in gone:  # block r-1 passes row r-1 through: row r holds the same stream
            owner[r] = owner[r - 1]
    return [None if o == owner[-1] else o for o in owner]


def runs(n_layers: int, skipped) -> list[int | None]:
    """Deprecated name of `row_owners` (0.2); removed in 0.4."""
    warnings.warn("tuned_lens.runs is deprecated; use row_owners", DeprecationWarning, stacklevel=2)
    return row_owners(n_layers, skipped)


class TunedLens(nn.Module, Lens):
    """Translators for every row but the last: `weight` (L, d_model, d_model) and `bias` (L, d_model).

    `meta` records the model (name, sha256 of its weights, n_layers, d_model), the blocks skipped
    while training, and `training` (settings, tokens, seconds, held-out KL per row).
    """

    def __init__(self, n_layers: int, d_model: int, meta: dict | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_layers, d_model, d_model))  # (L, d_out, d_in)
        self.bias = nn.Parameter(torch.zeros(n_layers, d_model))  # (L, d_model)
        self.meta = dict(meta or {})
        self.meta.update(n_layers=n_layers, d_model=d_model)
        self.meta.setdefault("skipped_blocks", [])

    @classmethod
    def identity(cls, model) -> TunedLens:
        """The untrained lens of `model` (as it is now, skips included): the logit lens."""
        from probes.core.load import source_of
        from probes.core.skip import skipped_blocks

        src = source_of(model)
        meta = {"model": src.name, "model_sha256": src.checksum, "skipped_blocks": skipped_blocks(model)}
        return cls(model.cfg.n_layers, model.cfg.d_model, meta)

    @property
    def n_layers(self) -> int:
        return self.weight.shape[0]

    @property
    def name(self) -> str:
        return self.meta.get("path") or "tuned lens"

    def __repr__(self) -> str:
        skipped = (
            f", trained with blocks {self.meta['skipped_blocks']} skipped"
            if self.meta["skipped_blocks"]
            else ""
        )
        steps = self.meta.get("training", {}).get("steps")
        trained = f", {steps} steps" if steps is not None else ", untrained"
        return (
            f"TunedLens({self.n_layers} translators {self.weight.shape[1]}x{self.weight.shape[2]}, "
            f"model {self.meta.get('model')!r}{trained}{skipped})"
        )

    def translate(self, h: torch.Tensor, row: int) -> torch.Tensor:
        """Translator `row` applied to a stream (..., d_model): h + W (h - mean h) + b."""
        w = self.weight[row].to(h.device, h.dtype)
        b = self.bias[row].to(h.device, h.dtype)
        centred = h - h.mean(-1, keepdim=True)
        return h + centred @ w.T + b

    label = "tuned lens"

    def transform_rows(self, model, resid: list[torch.Tensor]) -> list[torch.Tensor]:
        """The L+1 lens rows (each (..., d_model)) through their translators, for `model` as it is now."""
        self.check(model)
        from probes.core.skip import skipped_blocks

        now = skipped_blocks(model)
        trained = list(self.meta["skipped_blocks"])
        # A full model's lens on a pruned model is the comparison --compare-skip draws: silent.
        # A pruned model's lens elsewhere reads towards an output the model no longer has.
        if trained and now != trained:
            warnings.warn(
                f"this tuned lens was trained with blocks {trained} skipped, and the model now skips "
                f"{now or 'none'}: its translators target the other model's output",
                stacklevel=3,
            )
        owners = row_owners(self.n_layers, now)
        with torch.no_grad():
            return [x if o is None else self.translate(x, o) for x, o in zip(resid, owners)]

    def translate_rows(self, model, resid: list[torch.Tensor]) -> list[torch.Tensor]:
        """Deprecated name of `transform_rows` (0.2); removed in 0.4."""
        warnings.warn(
            "TunedLens.translate_rows is deprecated; use transform_rows", DeprecationWarning, stacklevel=2
        )
        return self.transform_rows(model, resid)

    def check(self, model) -> None:
        """Raise unless this lens was trained for `model`'s weights and shape."""
        from probes.core.load import source_of

        check_fits(
            self.meta, source_of(model).checksum, model.cfg.n_layers, model.cfg.d_model, source_of(model).name
        )

    def as_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **self.meta}

    def save(self, path, *, force: bool = False) -> Path:
        """Write `path`/config.json and `path`/translators.safetensors (float32); never overwrite without
        `force`."""
        from safetensors.torch import save_file

        from probes.io import staged_folder, swap_folder

        folder = check_lens_dir(path, force=force)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            "weight": self.weight.detach().float().cpu().contiguous(),
            "bias": self.bias.detach().float().cpu().contiguous(),
        }
        config = {k: v for k, v in self.as_dict().items() if k != "path"}
        # Staged beside the folder and swapped in whole: an interrupt leaves the old lens or the new one.
        place = lambda tmp: swap_folder(tmp, folder, force=force, check_ours=check_ours, what="tuned lens")
        with staged_folder(folder, place) as tmp:
            save_file(tensors, tmp / WEIGHTS)
            (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        self.meta["path"] = str(folder)  # from now on the lens goes by its folder
        return folder


def check_lens_dir(path, *, force: bool = False) -> Path:
    """A folder a lens can be saved into: new or empty, or, with `force`, a lens folder probes wrote (its
    config.json a lens's, nothing else in it): `force` never replaces a model checkpoint's config."""
    from probes.io import check_dir

    folder = check_dir(path, "out")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise TunedLensError(
                f"out={str(folder)!r} already exists and is not empty; pass force=True to replace a tuned "
                "lens saved there"
            )
        check_ours(folder)
    return folder


def check_ours(folder: Path) -> None:
    """Raise unless `folder` holds a tuned lens probes wrote and nothing else."""
    others = sorted(p.name for p in folder.iterdir() if p.name not in (CONFIG, WEIGHTS))
    try:
        config = read_json(folder / CONFIG, max_bytes=CONFIG_BYTES)
        ours = isinstance(config, dict) and config.get("format") == FORMAT
    except ProbesError:
        ours = False
    if others or not ours:
        why = (
            f"it also holds {', '.join(repr(o) for o in others[:3])}"
            if others
            else f"its {CONFIG} is not a lens's"
        )
        raise TunedLensError(
            f"out={str(folder)!r} is not a tuned lens folder written by probes ({why}); refusing to "
            "replace it even with force=True"
        )


def check_for_model(path, model_arg, n_layers: int) -> dict:
    """The config of lens `path` if it fits `model_arg` (as `probes.load` takes it), checked without loading
    the model."""
    from probes.core.load import resolve

    config = read_config(path)
    src = resolve(model_arg)
    check_fits(config, src.checksum, n_layers, config["d_model"], src.name)
    check_translators(lens_dir(path) / WEIGHTS, config["n_layers"], config["d_model"])
    return config


def check_fits(config: dict, checksum: str, n_layers: int, d_model: int, model_name: str) -> None:
    """One line naming both models when a lens's config does not belong to this model."""
    where = config.get("path", "this tuned lens")
    if config.get("model_sha256") != checksum:
        raise TunedLensError(
            f"{where} was trained for model {config.get('model')!r} (sha256 {config.get('model_sha256')}), "
            f"not for {model_name!r} (sha256 {checksum}); train one for this model with `probes tuned-lens "
            "train`"
        )
    if (config.get("n_layers"), config.get("d_model")) != (n_layers, d_model):
        raise TunedLensError(
            f"{where} has {config.get('n_layers')} translators of width {config.get('d_model')}; "
            f"the model has {n_layers} blocks of width {d_model}"
        )


def lens_dir(path) -> Path:
    """The folder of a lens: 'bundled' is the one shipped with the bundled model."""
    if str(path) == BUNDLED:
        from probes.core.load import BUNDLED_DIR

        return BUNDLED_DIR / "tuned-lens"
    from probes.io import user_path

    return user_path(path)


def read_config(path) -> dict:
    """A lens folder's checked config.json (torch-free: the CLI calls it before loading the model)."""
    folder = lens_dir(path)
    if not folder.is_dir():
        raise TunedLensError(f"lens={str(path)!r}: no such folder (train one with `probes tuned-lens train`)")
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise TunedLensError(f"{folder}: no {name}; a tuned lens folder holds {CONFIG} and {WEIGHTS}")
    where = folder / CONFIG
    config = read_json(where, max_bytes=CONFIG_BYTES, error=TunedLensError)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise TunedLensError(f"{where}: not a probes tuned lens (format {FORMAT!r} expected)")
    if config.get("version") != VERSION:
        raise TunedLensError(
            f"{where}: tuned lens version {config.get('version')!r}; this probes reads {VERSION}"
        )
    for key, kind in (("model_sha256", str), ("skipped_blocks", list)):
        if not isinstance(config.get(key), kind):
            raise TunedLensError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    if not isinstance(config.get("training", {}), dict):  # an untrained lens has no record
        raise TunedLensError(f"{where}: 'training' is not a record (a JSON object)")
    for key in ("n_layers", "d_model"):
        v = config.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TunedLensError(f"{where}: {key!r} must be a positive integer, got {v!r}")
    L, skipped = config["n_layers"], config["skipped_blocks"]
    # Read later as block numbers (which rows have a translator): one that is not a block of this lens's
    # model would be a warning at best and a wrong row at worst.
    bad = [b for b in skipped if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < L]
    if bad or len(set(skipped)) != len(skipped):
        what = f"{bad[0]!r} is not a block of {L} (0-{L - 1})" if bad else "a block is listed twice"
        raise TunedLensError(f"{where}: skipped_blocks {skipped!r}: {what}")
    config["skipped_blocks"] = sorted(skipped)
    config["path"] = "bundled" if str(path) == BUNDLED else str(folder)
    return config


def check_translators(file: Path, n_layers: int, d_model: int) -> None:
    """Raise unless `file`'s header holds the translators of a lens of `n_layers` x `d_model`, read before
    safetensors loads a byte of it (and before a tensor of a wrong or absurd shape is allocated)."""
    from probes.core.checkpoint import safetensors_shapes
    from probes.errors import ModelLoadError

    try:
        got = safetensors_shapes(file)
    except ModelLoadError as e:
        raise TunedLensError(str(e)) from None
    expected = {"weight": (n_layers, d_model, d_model), "bias": (n_layers, d_model)}
    if got != expected:
        shown = ", ".join(f"{k} {list(v)}" for k, v in got.items()) or "no tensors"
        raise TunedLensError(
            f"{file}: translators of shape {shown}; the lens's {CONFIG} says weight "
            f"{list(expected['weight'])}, bias {list(expected['bias'])}"
        )


def load_tuned_lens(path, model) -> TunedLens:
    """The tuned lens saved in folder `path` ('bundled': the one shipped with the bundled model), for `model`.

    A lens trained for other weights (its recorded sha256 differs) is refused before its tensors are read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from probes.core.load import source_of

    config = read_config(path)
    src = source_of(model)
    check_fits(config, src.checksum, model.cfg.n_layers, model.cfg.d_model, src.name)
    file = lens_dir(path) / WEIGHTS
    L, d = config["n_layers"], config["d_model"]
    check_translators(file, L, d)
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise TunedLensError(f"{file}: cannot read the translators ({e})") from None
    if not all(torch.isfinite(v).all() for v in tensors.values()):
        raise TunedLensError(f"{file}: the translators hold NaN or infinite values")
    meta = {k: v for k, v in config.items() if k not in ("format", "version")}
    lens = TunedLens(L, d, meta)
    with torch.no_grad():
        lens.weight.copy_(tensors["weight"].float())
        lens.bias.copy_(tensors["bias"].float())
    device = model.unembed.original_component.weight.device
    return lens.to(device) if device.type != "meta" else lens


def lens_of(lens, model, translators=UNSET) -> Lens:
    """`lens=` as studies take it: None (the logit lens), a Lens, or a tuned lens folder / 'bundled' to load.

    `translators=`, the 0.2 keyword for a tuned lens, still works for this release with a warning.
    """
    if translators is not UNSET:
        warnings.warn(
            "translators= is deprecated and will be removed in 0.4; pass the tuned lens as lens=",
            DeprecationWarning,
            stacklevel=3,
        )
        if lens is None:
            lens = translators
    if lens is None:
        return LogitLens()
    if isinstance(lens, Lens):
        return lens
    return load_tuned_lens(lens, model)
