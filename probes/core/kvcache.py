"""KV cache plumbing: the transformers-5 `cache=` adapter and a cache that tolerates skipped blocks."""

from __future__ import annotations

from transformers import DynamicCache

from probes.core.state import state_of


def _pass_cache_as_past_key_values(module, args, kwargs):
    # transformers >= 5.2x GPT2Block hands the cache to attention as `cache=`, but TransformerLens
    # 4.3's attention bridge reads only `past_key_values` / `layer_past`. Without this, cached
    # decoding silently attends to the newest token alone and every token after the first is wrong.
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        kwargs["past_key_values"] = kwargs["cache"]
    return args, kwargs


def install_cache_adapter(model) -> list:
    """Register the adapter on every block's attention that lacks it; return the handles added.

    `probes.load` installs it for good (it is part of the loaded model's baseline); decoding on a
    bridge made elsewhere installs it for the duration and removes exactly these handles.
    """
    installed = state_of(model).cache_adapters
    added = []
    for i, block in enumerate(model.blocks):
        if i not in installed:
            installed[i] = block.attn.register_forward_pre_hook(
                _pass_cache_as_past_key_values, with_kwargs=True
            )
            added.append(i)
    return [(model, i) for i in added]


def remove_cache_adapter(added: list) -> None:
    for model, i in added:
        state_of(model).cache_adapters.pop(i).remove()


class SkipTolerantCache(DynamicCache):
    """A DynamicCache whose length is the longest layer's, not layer 0's.

    A skipped block writes nothing to its cache layer. transformers reads the sequence length and
    mask size from layer 0, so skipping block 0 would reset positions and shrink the mask; here
    every layer that was written has the same length and the empty ones are ignored.
    """

    def get_seq_length(self, layer_idx: int = 0) -> int:
        lengths = [layer.get_seq_length() for layer in self.layers]
        return max(lengths, default=0)

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0
