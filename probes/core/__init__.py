"""The engine: load a model, attach and remove hooks, skip blocks, encode prompts, sample and decode."""
