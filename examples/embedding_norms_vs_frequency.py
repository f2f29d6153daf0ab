"""Embedding norms against token id (for BPE, ids roughly follow merge order, a frequency proxy).

python examples/embedding_norms_vs_frequency.py    # writes embedding_norms.png
"""

import numpy as np

import probes

model = probes.load()
report = probes.embeddings(model, common=["king", "love", "night"], rare=["xqzt", "blorpt", "zzzzz"])

norms = np.asarray(report.checkpoint.vocab_norms)  # the checkpoint's own wte, not the centred W_E
ids = np.arange(len(norms))
for lo, hi in [(0, 256), (256, 1024), (1024, 4096), (4096, len(norms))]:
    print(f"token ids {lo:5d}-{hi - 1:5d}: mean norm {norms[lo:hi].mean():.4f}")
print(f"correlation of norm with token id: {np.corrcoef(ids, norms)[0, 1]:+.3f}")

report.figure_scatter().savefig("embedding_norms.png", dpi=120)
print("wrote embedding_norms.png")
