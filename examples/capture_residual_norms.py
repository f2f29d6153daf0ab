"""Capture the residual stream layer by layer, save it, and plot its norm by layer.

python examples/capture_residual_norms.py          # writes residual_norms.png and states.safetensors
"""

from matplotlib.figure import Figure

import probes

model = probes.load()
prompt = "HAMLET: To be, or not to be, that is the question"

curves = {}
for spec in ["none", "odd"]:
    with probes.skip(model, spec):
        acts = probes.capture(model, prompt, hooks=("resid_pre", "resid_post"))
    stream = acts.stack("resid_pre")  # (layer, pos, d_model)
    curves[spec] = stream[:, 1:].norm(dim=-1).mean(dim=-1)  # BOS excluded: its norm is an outlier
    if spec == "none":
        acts.save("states.safetensors", force=True)

fig = Figure(figsize=(6, 4), layout="constrained")
ax = fig.subplots()
for spec, norms in curves.items():
    ax.plot(range(len(norms)), norms.numpy(), marker="o", label=f"skip {spec}")
ax.set_xlabel("block (residual stream entering it)")
ax.set_ylabel("mean L2 norm")
ax.legend()
fig.savefig("residual_norms.png", dpi=120)
print({k: [round(float(x), 2) for x in v] for k, v in curves.items()})
print("wrote residual_norms.png and states.safetensors")
