"""The embeddings study: token ids, norms, neighbours and cosines of common and rare words."""
