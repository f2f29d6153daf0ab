"""Studies built on the engine: each takes a model and prompts and returns a result object with .figure() and
.as_dict()."""
