"""CPU product routing, re-measured here: which route computes x @ W + b fastest for each row count.

`probes.core.runner.products` routes a float32 CPU product by its number of rows (one row: oneDNN;
5-32: oneDNN with the roles swapped; other 2-256: MKL on the (out, in) copy; the unembedding of
many: oneDNN). That table was measured on one 2-core AMD EPYC. This script times every route on
GPT-2 small's four block products and its unembedding (d_model 768, 50,257 tokens), interleaved
after a warm-up, for a range of row counts, and prints per row count:

  - each route's median time for the five products together;
  - the built-in table's own dispatch (`products.linear`, product by product);
  - the fastest single route, and whether the table is within `--tolerance` (default 10%) of it,
    with the table's speed-up over the plain `torch.addmm`.

It ends with one line: whether the built-in table holds on this machine.

    python benchmarks/bench_products.py [--rows 1,2,4,5,8,10,16,24,32,33,40,64,128,256,512]
    [--repeats 5] [--threads N] [--tolerance 0.10]
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from common import interleaved

from probes.core.runner import products
from probes.core.runner.products import Weight

SHAPES = {"qkv": (768, 2304), "attn_out": (768, 768), "mlp_in": (768, 3072), "mlp_out": (3072, 768)}
VOCAB = 50257


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1,2,4,5,8,10,16,24,32,33,40,64,128,256,512")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--tolerance", type=float, default=0.10)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not products.routes_work():
        print("oneDNN routes do not work in this torch build: every product runs as torch.addmm")
        return
    g = torch.Generator().manual_seed(0)
    weights = {k: (Weight(torch.randn(*s, generator=g) * 0.02), torch.zeros(s[1])) for k, s in SHAPES.items()}
    unembed = (Weight(torch.randn(768, VOCAB, generator=g) * 0.02, wide=True), torch.zeros(VOCAB))
    for w, _ in [*weights.values(), unembed]:
        w.out_in()  # made once, outside the clock, as the fused runner keeps it
    routes = {
        "addmm": lambda x, w, b: torch.addmm(b, x, w.in_out),
        "onednn": lambda x, w, b: products._onednn(x, w.out_in(), b),
        "onednn_swapped": lambda x, w, b: products.onednn_swapped(x, w, b, None),
        "mkl_out_in": lambda x, w, b: products.mkl_out_in(x, w, b, None),
        "table": lambda x, w, b: products.linear(x, w, b),  # the built-in routing, product by product
    }
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"{'rows':>5} " + " ".join(f"{r:>15}" for r in routes) + f" {'fastest':>15}  table within tolerance"
    )
    holds_all = True
    for rows in [int(r) for r in args.rows.split(",")]:
        x_in = torch.randn(rows, 768, generator=g)
        x_mlp = torch.randn(rows, 3072, generator=g)

        def run(route, rows=rows, x_in=x_in, x_mlp=x_mlp):
            f = routes[route]
            with torch.inference_mode():
                for name, (w, b) in weights.items():
                    f(x_mlp if name == "mlp_out" else x_in, w, b)
                f(x_in, *unembed)

        _, times = interleaved({r: (lambda r=r: run(r)) for r in routes}, args.repeats)
        med = {r: statistics.median(t) for r, t in times.items()}
        fastest = min((r for r in med if r != "table"), key=med.get)
        ok = med["table"] <= med[fastest] * (1 + args.tolerance)
        holds_all &= ok
        cells = " ".join(f"{1e3 * med[r]:12.2f} ms" for r in routes)
        speedup = med["addmm"] / med["table"]
        print(f"{rows:>5} {cells} {fastest:>15}  {'yes' if ok else 'NO'} (table {speedup:.2f}x addmm)")
    verdict = "holds" if holds_all else "does NOT hold"
    print(f"the built-in routing table {verdict} on this machine (tolerance {args.tolerance:.0%})")


if __name__ == "__main__":
    main()
