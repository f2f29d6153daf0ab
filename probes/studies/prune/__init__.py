"""The pruning study: skip blocks, compare with the full model, score held-out text, rank blocks."""
