"""The capture study: hook tensors of one prompt, or of a dataset streamed into shards."""
