"""PCA of the whole embedding matrix: its two main directions, every token's coordinates, and the words'
positions.

    pca = vocab_pca(wte)                  # wte: (d_vocab, d_model)
    pca.coords                            # (d_vocab, 2) every token
    pca.project(vectors)                  # (n, 2) any vectors, e.g. the chosen words'

Exact, not randomised: the top two eigenvectors of the centred covariance, computed in float64
(the same directions as the top right-singular vectors of the centred matrix, up to sign). Each
direction's sign is fixed so that its largest loading is positive, so reruns draw the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VocabPCA:
    """The first two principal components of an embedding matrix's rows."""

    mean: object  # (d_model,) float64 tensor: the vocabulary's mean row
    components: object  # (2, d_model) float64 tensor: unit directions, PC1 first
    explained: list[float]  # fraction of the total variance along each component
    coords: object  # (d_vocab, 2) float32 tensor: every token's coordinates

    def project(self, vectors):
        """(n, d_model) -> (n, 2): coordinates of any vectors in this PCA's plane."""
        return ((vectors.double() - self.mean) @ self.components.T).float()


def vocab_pca(wte) -> VocabPCA:
    """PCA of `wte`'s rows (d_vocab, d_model): mean, top-2 directions, explained variance, coordinates."""
    import torch

    x = wte.double()
    mean = x.mean(dim=0)  # (d_model,), in float64
    xc = x - mean  # (d_vocab, d_model)
    # The covariance in float32 (a blocked product sums the d_vocab terms accurately; float64 took
    # 1 s on GPT-2's 50,257 x 768), decomposed in float64; cheaper than an SVD of the tall matrix.
    xf = xc.float()
    cov = (xf.T @ xf).double()  # (d_model, d_model)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    top = evecs[:, -2:].flip(-1).T.contiguous()  # (2, d_model), largest eigenvalue first
    pivot = top.abs().argmax(dim=1)  # (2,)
    signs = torch.sign(top[torch.arange(2), pivot])
    top = top * signs[:, None]
    total = evals.clamp_min(0).sum()
    explained = [float(v / total) if total > 0 else 0.0 for v in evals[-2:].flip(0)]
    return VocabPCA(mean=mean, components=top, explained=explained, coords=(xc @ top.T).float())
