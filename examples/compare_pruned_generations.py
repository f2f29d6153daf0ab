"""Compare greedy generations of the full model and with odd / last-half blocks skipped.

python examples/compare_pruned_generations.py      # writes pruned_generations.png
"""

import probes
from probes.studies.prune.metrics import distinct_n, repeated_ngram_fraction

model = probes.load()  # the bundled Shakespeare GPT-2
prompt = "ROMEO:"

for spec in ["none", "odd", "last-half"]:
    with probes.skip(model, spec) as s:
        out = probes.generate(model, prompt, max_new_tokens=60, greedy=True)
    tokens = out[0].tokens
    print(f"== skip {spec} (kept blocks {s.kept})")
    print(prompt + out[0].text)
    print(
        f"   distinct-2 {distinct_n(tokens, 2):.2f}, repeated 4-grams {repeated_ngram_fraction(tokens):.0%}\n"
    )

comparison = probes.compare_pruned(model, prompt, ["odd", "last-half"], max_new_tokens=60)
comparison.figure().savefig("pruned_generations.png", dpi=120)
print("wrote pruned_generations.png")
