"""Skip blocks: a probe under which listed blocks pass the residual stream through uncomputed."""

from __future__ import annotations

from probes.layers import complement, parse_layers

_OVERRIDE = "_probes_skipped_by"


def _identity_forward(block):
    def forward(hidden_states=None, *args, **kwargs):
        if hidden_states is None:
            hidden_states = kwargs["hidden_states"]
        # Fire resid_pre and resid_post so probes see the stream pass through unchanged;
        # nothing else runs: no attention, no MLP, no KV-cache write.
        return block.hook_out(block.hook_in(hidden_states))

    return forward


def skipped_layers(model) -> list[int]:
    """Blocks currently skipped on `model` by any active `skip` context."""
    return [i for i, b in enumerate(model.blocks) if getattr(b, _OVERRIDE, None) is not None]


class skip:
    """`with probes.skip(model, "odd"): ...` skips the blocks a layer spec names.

    A skipped block's `hook_resid_post` equals its `hook_resid_pre` and the block is not
    computed at all, so generation with half the blocks skipped is faster. Nested contexts are
    isolated: each restores only the blocks it skipped itself, also after an exception.
    """

    def __init__(self, model, spec=None, *, keep=None):
        n = len(model.blocks)
        if keep is not None:
            if spec is not None:
                from probes.errors import SpecError

                raise SpecError("give either a skip spec or a keep spec, not both")
            self.layers = complement(parse_layers(keep, n), n)
        else:
            self.layers = parse_layers(spec, n)
        self.model = model
        self._mine: list[int] = []
        self._entered = False

    @property
    def kept(self) -> list[int]:
        return complement(self.layers, len(self.model.blocks))

    def __enter__(self):
        if self._entered:
            from probes.errors import ProbesError

            raise ProbesError("this skip context is already active; create a new probes.skip(...) to nest")
        self._entered = True
        try:
            for i in self.layers:
                block = self.model.blocks[i]
                if getattr(block, _OVERRIDE, None) is not None:
                    continue  # an outer context skips it already; leave it to that context
                object.__setattr__(block, "forward", _identity_forward(block))
                object.__setattr__(block, _OVERRIDE, self)
                self._mine.append(i)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc):
        self._restore()
        return False

    def _restore(self):
        for i in reversed(self._mine):
            block = self.model.blocks[i]
            object.__delattr__(block, "forward")
            object.__delattr__(block, _OVERRIDE)
        self._mine = []
        self._entered = False
