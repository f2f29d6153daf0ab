"""Watch each generated token form across the layers (logit lens recorded during generation).

python examples/lens_during_generation.py          # writes lens_generation.png
"""

import probes

model = probes.load()
gl = probes.generation_lens(model, "JULIET:", max_new_tokens=25, greedy=True)

rows = gl.lens.row_labels
for token, layer in zip(gl.generated_strings, gl.emergence):
    where = rows[layer] if layer is not None else "never top-1"
    print(f"{token!r:>14}  emerges at {where}")

gl.figure().savefig("lens_generation.png", dpi=120)
print("wrote lens_generation.png")
