"""Where a model's weights came from (`ModelSource`), and the checksum that identifies them."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights came from."""

    name: str  # what the user asked for: "shakespeare-gpt2", "gpt2", "./ckpt"
    kind: str  # "bundled", "hub", "local", "gguf" or "external" (a bridge booted elsewhere)
    path: str  # the checkpoint directory actually read, or the GGUF file

    @property
    def folder(self) -> str:
        """The checkpoint folder transformers reads (a GGUF file's is its cached conversion)."""
        if self.kind != "gguf":
            return self.path
        from probes.core.gguf import converted

        return str(converted(self.path, self.checksum))

    @property
    def checksum(self) -> str:
        """sha256 of the weights file(s), first 16 hex digits (identifies the exact checkpoint)."""
        return checksum_of(self.path).result()

    def as_dict(self) -> dict:
        return {"name": self.name, "source": self.kind, "path": self.path, "sha256": self.checksum}


def checksum_of(path: str) -> _Checksum:
    """The checksum of `path`'s weights (a folder's safetensors, or one file), being computed in a background
    thread (see `_hash_files`)."""
    files = [Path(path)] if Path(path).is_file() else sorted(Path(path).glob("*.safetensors"))
    return _hash_files(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=16)
def _hash_files(files: tuple) -> _Checksum:
    """Hash once per (file, mtime, size): gigabytes of GPT-2 XL should not be re-read per command.

    `load` asks for it before booting the model: reading and hashing release the GIL, so the hash
    (0.5 s for GPT-2 small) is ready by the time a command records it.
    """
    return _Checksum(files)


class _Checksum:
    """sha256 of files (first 16 hex digits), computed in a daemon thread; `result()` waits for it."""

    def __init__(self, files: tuple):
        import threading

        self._files, self._done, self._value, self._error = files, threading.Event(), None, None
        threading.Thread(target=self._run, name="probes-checksum", daemon=True).start()

    def _run(self) -> None:
        try:
            h = hashlib.sha256()
            for f, _, _ in self._files:
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 22), b""):
                        h.update(chunk)
            self._value = h.hexdigest()[:16]
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._error = e
        finally:
            self._done.set()

    def result(self) -> str:
        self._done.wait()
        if self._error is not None:
            _hash_files.cache_clear()  # a file that could not be read is read again next time
            raise self._error
        return self._value


def external_source(model) -> ModelSource:
    """What we can say of a bridge booted outside `probes.load`: its config's model name."""
    name = getattr(model.cfg, "model_name", "unknown")
    return ModelSource(name=name, kind="external", path=str(name))
