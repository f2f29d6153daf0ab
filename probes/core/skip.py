"""Skip blocks: a probe under which listed blocks pass the residual stream through uncomputed."""

from __future__ import annotations

import threading

from probes.core.layers import complement, parse_layers
from probes.core.state import state_of
from probes.errors import ProbesError, SpecError


def _identity_forward(block):
    def forward(hidden_states=None, *args, **kwargs):
        if hidden_states is None:
            hidden_states = kwargs["hidden_states"]
        # Fire resid_pre and resid_post so probes see the stream pass through unchanged;
        # nothing else runs: no attention, no MLP, no KV-cache write.
        return block.hook_out(block.hook_in(hidden_states))

    return forward


def skipped_blocks(model) -> list[int]:
    """Blocks currently skipped on `model` by any active `skip` context, in order."""
    return sorted(state_of(model).skipped)


def skip_spec(spec, keep, n_layers: int) -> list[int]:
    """The blocks to skip for a skip spec or (exclusive) a keep spec; both are layer specs."""
    if keep is not None:
        if spec is not None:
            raise SpecError("give either a skip spec or a keep spec, not both")
        return complement(parse_layers(keep, n_layers), n_layers)
    return parse_layers(spec, n_layers)


class skip:
    """`with probes.skip(model, "odd"): ...` skips the blocks a layer spec names.

    A skipped block's `hook_resid_post` equals its `hook_resid_pre` and the block is not
    computed at all, so generation with half the blocks skipped is faster. Nested contexts are
    isolated: each restores only the blocks it skipped itself, also after an exception.
    """

    def __init__(self, model, spec=None, *, keep=None):
        self.layers = skip_spec(spec, keep, len(model.blocks))
        self.model = model
        self._mine: list[int] = []
        self._saved: dict = {}
        self._entered = False
        self._thread: int | None = None

    @property
    def kept(self) -> list[int]:
        return complement(self.layers, len(self.model.blocks))

    def __repr__(self) -> str:
        from probes.core.layers import format_layers

        return f"skip({format_layers(self.layers)}, {'active' if self._entered else 'inactive'})"

    def __enter__(self):
        if self._entered:
            raise ProbesError("this skip context is already active; create a new probes.skip(...) to nest")
        owners = state_of(self.model).skipped
        me = threading.get_ident()
        if any(owner._thread != me for owner in owners.values()):
            # Two threads skipping blocks of one model would each see the other's blocks skipped.
            raise ProbesError(
                "another thread has blocks of this model skipped; probes are not thread-safe, "
                "so use one model per thread (or a lock around each probe)"
            )
        self._thread = me
        self._entered = True
        try:
            for i in self.layers:
                if i in owners:
                    continue  # an outer context skips it already; leave it to that context
                block = self.model.blocks[i]
                self._saved[i] = block.__dict__.get("forward")  # a user's own override comes back on exit
                object.__setattr__(block, "forward", _identity_forward(block))
                owners[i] = self
                self._mine.append(i)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc):
        self._restore()
        return False

    def _restore(self):
        owners = state_of(self.model).skipped
        for i in reversed(self._mine):
            block, saved = self.model.blocks[i], self._saved.pop(i, None)
            if saved is None:
                object.__delattr__(block, "forward")
            else:
                object.__setattr__(block, "forward", saved)
            del owners[i]
        self._mine = []
        self._entered = False
