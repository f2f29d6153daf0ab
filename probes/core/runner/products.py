"""CPU product routing: which library and layout computes x @ W + b, by row count, where it was measured.

Plain `torch.addmm` is the default. On a CPU in float32 without gradients, the row counts below
take the routes that measured faster on a 2-core AMD EPYC (Zen 3, AVX2; one decoding step of
GPT-2 small's products, 2 threads; `benchmarks/bench_products.py` re-measures them on the machine
it runs on and says whether this table still holds there):

- one row: oneDNN (`torch.ops.mkldnn._linear_pointwise`, what torch.compile's CPU backend calls) on
  the (out, in) copy: 7.7 ms for the five products against 13.2 straight from the (in, out) weight
  through a transposed view and 9.4 for `addmm` (`bench_products.py`, quiet, median of 5); one sampled
  row of GPT-2 small decodes at 42.4 tokens/s against 30.6.
- 5 to 32 rows (`SWAPPED_ROWS`): oneDNN with the operands' roles swapped. The (out, in) weight is
  its input, whose many rows it blocks and streams once, and x, padded to a multiple of 8, its
  small "weight": W @ x^T, transposed back with the bias added. 16 rows: 37.5 ms for the blocks
  and 12.7 for the unembedding, against 50.9 and 20.5 the usual way round and 46.6 and 27.1 for MKL.
- 2 to 256 rows otherwise (`BATCH_ROWS`): MKL as W^T @ x^T on an (out, in) copy of the weight,
  rows padded to a multiple of 8 from `PAD_FROM` rows on. MKL's AVX2 kernels take the rows eight
  at a time and some remainders are slow: 60-65 ms for 8 or 16 rows, 80-120 ms for 10 to 15.
- the unembedding (a wide weight) of 33 rows or more (`WIDE_ROWS`): oneDNN the usual way round. GPT-2's
  50,257-wide unembedding, median of 5: 33 rows 39.5 ms against MKL's 87.9; 83 rows (a lens chunk)
  83.1 against 128.0; 256 rows 229.7 against 261.3; the held-out sweep's 512: 320-390 against 530.

Any route that fails on a call (a torch build without oneDNN, a shape its kernels refuse) falls
back to `torch.addmm` for good, with one warning; a wrong answer is caught before first use by
`routes_work()`, which checks every route on several shapes against float64.
`PROBES_CPU_ROUTES=0` keeps every product plain.
"""

from __future__ import annotations

import os
import warnings

import torch

BATCH_ROWS = range(2, 257)  # rows for which a CPU product runs as W^T @ x^T on the (out, in) copy
ROW_MULTIPLE = 8  # ... with the rows padded to a multiple of this, from PAD_FROM rows on
PAD_FROM = 7
SWAPPED_ROWS = range(5, 33)  # rows for which oneDNN runs the product with the operands' roles swapped
WIDE_ROWS = 33  # from here the unembedding (a wide weight) runs through oneDNN the usual way round

_ROUTES: bool | None = None  # None: not checked yet; False: plain products only
OFF = ("0", "false", "no", "off")  # PROBES_CPU_ROUTES=0: plain products everywhere


class Weight:
    """A weight stored (in, out), or (layer, in, out), with its (out, in) copy made on first use.

    The (out, in) copy is what MKL and swapped oneDNN products want for a few rows; it costs one
    more copy of the weight, made only on a CPU and only when such a product runs.
    """

    def __init__(self, in_out: torch.Tensor, *, wide: bool = False):
        self.in_out = in_out
        self.wide = wide  # the unembedding: many rows go through oneDNN (WIDE_ROWS)
        self._out_in: torch.Tensor | None = None
        self.on_cpu = in_out.device.type == "cpu"

    def out_in(self) -> torch.Tensor:
        if self._out_in is None:
            with torch.no_grad():
                self._out_in = self.in_out.transpose(-1, -2).contiguous()
        return self._out_in


def linear(x: torch.Tensor, weight: Weight, bias: torch.Tensor, layer: int | None = None) -> torch.Tensor:
    """x (rows, in) @ weight (of `layer`) + bias: (rows, out), on the route measured fastest for its rows."""
    route = _route(x, weight) if weight.on_cpu else None
    if route is not None:
        try:
            return route(x, weight, bias, layer)
        except Exception as e:  # noqa: BLE001 - any failure of a route: the plain product from now on
            _give_up(route.__name__, e)
    return torch.addmm(bias, x, weight.in_out if layer is None else weight.in_out[layer])


def linear_out_in(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """x (rows, in) @ weight.T + bias for a weight stored (out, in), as in nn.Linear, into `out` if given.

    oneDNN on a CPU where it can: its product and then one copy into `out` beat MKL writing in place.
    """
    if weight.device.type == "cpu" and _routes_on(x):
        try:
            y = _onednn(x, weight, bias)
            return y if out is None else out.copy_(y)
        except Exception as e:  # noqa: BLE001 - see linear
            _give_up("onednn", e)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def _route(x: torch.Tensor, weight: Weight):
    """The route for x's rows, or None for the plain product."""
    if not _routes_on(x):
        return None
    rows = x.shape[0]
    if rows == 1:
        return onednn_out_in
    if rows in SWAPPED_ROWS:
        return onednn_swapped
    if weight.wide and rows >= WIDE_ROWS:
        return onednn_out_in
    if rows in BATCH_ROWS:
        return mkl_out_in
    return None


def onednn_out_in(x, weight: Weight, bias, layer):
    """x @ W + b through oneDNN the usual way round, on the (out, in) copy (one row; the wide unembedding)."""
    wt = weight.out_in()
    return _onednn(x, wt if layer is None else wt[layer], bias)


def onednn_swapped(x, weight: Weight, bias, layer):
    """x @ W + b, dense (rows, out), computed by oneDNN as W_out_in @ x.T (see SWAPPED_ROWS)."""
    wt = weight.out_in()
    wt = wt if layer is None else wt[layer]
    rows = x.shape[0]
    y = torch.ops.mkldnn._linear_pointwise(wt, pad_rows(x).contiguous(), None, "none", [], "")
    # y: (out, padded rows)
    return torch.add(y[:, :rows].t(), bias, out=y.new_empty(rows, y.shape[0]))


def mkl_out_in(x, weight: Weight, bias, layer):
    """x @ W + b as (W^T @ x^T)^T on the (out, in) copy, rows padded to a multiple of 8 (see BATCH_ROWS)."""
    wt = weight.out_in()
    wt = wt if layer is None else wt[layer]
    rows = x.shape[0]
    if rows >= PAD_FROM and padded(rows) != rows:
        # Copied: elementwise ops (gelu) on the strided slice run 3-8x slower than on dense memory.
        return torch.addmm(bias[:, None], wt, pad_rows(x).t())[:, :rows].t().contiguous()
    return torch.addmm(bias[:, None], wt, x.t()).t()  # a transposed view


def padded(rows: int) -> int:
    return -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE


def pad_rows(x: torch.Tensor) -> torch.Tensor:
    """x with zero rows added up to a multiple of ROW_MULTIPLE rows."""
    missing = padded(x.shape[0]) - x.shape[0]
    return torch.cat([x, x.new_zeros(missing, x.shape[1])]) if missing else x


def _onednn(x: torch.Tensor, weight_out_in: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight_out_in, bias, "none", [], "")


def _routes_on(x: torch.Tensor) -> bool:
    """Routes for this input: float32, no gradient wanted, and every route checked once and right."""
    global _ROUTES
    if x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled()):
        return False  # oneDNN has no autograd; other dtypes were never measured
    if _ROUTES is None:
        _ROUTES = os.environ.get("PROBES_CPU_ROUTES", "1").strip().lower() not in OFF and routes_work()
    return _ROUTES


def _give_up(route: str, error: Exception) -> None:
    global _ROUTES
    _ROUTES = False
    warnings.warn(
        f"the CPU product route {route} failed ({type(error).__name__}: {error}); "
        "using torch.addmm from now on",
        RuntimeWarning,
        stacklevel=3,
    )


CHECK_ROWS = (1, 3, 5, 8, 16, 32, 33, 300)  # one of each route, and the edges of each range


def routes_work() -> bool:
    """Whether every route gets x @ W + b right here, for each of CHECK_ROWS rows, against float64."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        w = Weight(torch.randn(24, 40, generator=g), wide=True)
        b = torch.randn(40, generator=g)
        with torch.inference_mode():
            for rows in CHECK_ROWS:
                x = torch.randn(rows, 24, generator=g)
                expected = x.double() @ w.in_out.double() + b.double()
                for route in (onednn_out_in, onednn_swapped, mkl_out_in):
                    if not torch.allclose(route(x, w, b, None).double(), expected, atol=1e-4):
                        return False
                got = _onednn(x, w.out_in(), b)
                if not torch.allclose(got.double(), expected, atol=1e-4):
                    return False
        return True
    except Exception:  # noqa: BLE001 - any failure means: plain products
        return False


def reset() -> None:
    """Forget the routes' check and any failure (tests, benchmarks): the next product checks again."""
    global _ROUTES
    _ROUTES = None
