"""Training a tuned lens: minimise KL(final || translated row) for every row's translator, on a
held-out-checked text set.

    tl = probes.train_tuned_lens(model, "FILE:train.txt", steps=250)     # a TunedLens
    tl.meta["training"]["heldout"]      # per row: KL of the logit lens and of the tuned lens, in nats

As in the paper: translators start at the identity, the loss is the KL divergence from the model's
own output distribution to each translated row's (summed over rows, averaged over tokens), and
the optimiser is SGD with Nesterov momentum and a linearly decaying learning rate (AdamW on
request). The model is never changed: its weights are frozen while the translators train.

The module imports no torch at load time, so the CLI can show `TunedLensConfig`'s defaults.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace

from probes.core import distributed
from probes.errors import ProbesError

OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class TunedLensConfig:
    """Every training setting, with its default in one place."""

    steps: int = 250
    tokens_per_step: int = (
        512  # real tokens a step, in whole windows (a longer window alone); CPU-sized, not the paper's 2^18
    )
    lr: float = 1.0  # SGD-Nesterov's, as the paper; AdamW wants about 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-3  # towards the identity: the translator is h + W h + b
    warmup: float = 0.05  # fraction of steps with a rising learning rate; then linear decay to 0
    heldout: float = 0.1  # fraction of the windows kept out of training and scored before and after
    max_heldout_tokens: int = 8192
    seed: int = 0
    bos: bool = True

    def __post_init__(self):
        def whole(name, low=1):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ProbesError(
                    f"tuned lens {name.replace('_', '-')} must be an integer >= {low}, got {v!r}"
                )

        whole("steps"), whole("tokens_per_step", 2), whole("max_heldout_tokens"), whole("seed", 0)
        if self.optimizer not in OPTIMIZERS:
            raise ProbesError(f"tuned lens optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        for name, low, high in (
            ("lr", 0, None),
            ("momentum", 0, 1),
            ("weight_decay", 0, None),
            ("warmup", 0, 1),
            ("heldout", 0, 1),
        ):
            v = getattr(self, name)
            bad = (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not v >= low
                or (high is not None and not v < high)
            )
            if bad or (name == "lr" and v == 0):
                raise ProbesError(f"tuned lens {name.replace('_', '-')} {v!r} is out of range")

    @classmethod
    def of(cls, config: TunedLensConfig | None = None, **overrides) -> TunedLensConfig:
        names = {f.name for f in fields(cls)}
        if unknown := sorted(set(overrides) - names):
            raise ProbesError(
                f"unknown tuned lens setting {', '.join(unknown)}; settings: {', '.join(sorted(names))}"
            )
        return replace(config or cls(), **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def train_tuned_lens(model, texts, config: TunedLensConfig | None = None, *, progress=None, **overrides):
    """A TunedLens for `model` as it is now (inside `probes.skip`: for the pruned model), trained on `texts`.

    `texts`: a list of strings, a `probes.core.dataset.Dataset`, or 'FILE:path' / 'HF:name'. They
    are cut into context-long windows; a seeded `heldout` fraction of the windows is scored before
    and after training (recorded in `meta['training']['heldout']`) and never trained on.
    """
    import torch

    from probes.core.dataset import dataset_of
    from probes.core.load import source_of
    from probes.core.runner import runner_for
    from probes.core.skip import skipped_blocks
    from probes.core.windows import batches, windows
    from probes.progress import progress_of
    from probes.studies.lens.tuned import TunedLens, row_owners

    cfg = TunedLensConfig.of(config, **overrides)
    p = progress_of(progress)
    gen = torch.Generator().manual_seed(cfg.seed)
    items = list(windows(model, dataset_of(texts), bos=cfg.bos))
    order = torch.randperm(len(items), generator=gen).tolist()
    n_held = round(len(items) * cfg.heldout)
    if cfg.heldout > 0 and (n_held == 0 or n_held == len(items)):
        raise ProbesError(
            f"{len(items)} windows of text cannot be split {1 - cfg.heldout:.0%}/{cfg.heldout:.0%} for "
            "training and held-out scoring; give more text or heldout=0"
        )
    held = [items[i] for i in order[:n_held]]
    train = [items[i] for i in order[n_held:]]
    lens = TunedLens.identity(model).to(runner_for(model).home or "cpu")
    owners = sorted({o for o in row_owners(model.cfg.n_layers, skipped_blocks(model)) if o is not None})
    before = heldout_kl(model, lens, held, cfg) if held else None
    opt = _optimizer(lens, cfg)
    warm = max(1, round(cfg.steps * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (cfg.steps - s) / max(1, cfg.steps - warm)))
    )

    def epochs():  # the training windows, reshuffled each pass, forever
        while True:
            for i in torch.randperm(len(train), generator=gen).tolist():
                yield train[i]

    start, cpu, tokens, losses = time.perf_counter(), time.process_time(), 0, []
    every = max(1, cfg.steps // 10)
    stream = batches(model, epochs(), max_tokens=cfg.tokens_per_step, max_rows=1 << 16)
    with p.task("tuned lens", total=cfg.steps, unit="steps") as task, _frozen(model):
        for step in range(cfg.steps):
            batch = next(stream)  # the same global batch on every rank
            opt.zero_grad(set_to_none=True)
            n = int(batch.mask.sum())
            loss = _step_loss(model, lens, batch.part(distributed.rank(), distributed.size()), owners, n)
            # under torchrun: each rank's rows, then the whole batch's gradient on every rank
            loss = _all_reduce_grads(lens, loss)
            torch.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
            opt.step()
            sched.step()
            tokens += n
            losses.append(loss)
            task.advance()
            if (step + 1) % every == 0 or step + 1 == cfg.steps:
                p.note(f"step {step + 1}/{cfg.steps}: KL(final || row) {loss:.4f} nats a row")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = heldout_kl(model, lens, held, cfg) if held else None
    src = source_of(model)
    lens.meta["training"] = {
        "config": cfg.to_dict(),
        "steps": cfg.steps,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "ms_per_1000_tokens": round(1e6 * seconds / max(tokens, 1), 1),
        "threads": torch.get_num_threads(),
        # CPU time of all threads: on a machine shared with other work, wall time says little.
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_1000_tokens": round(1e6 * cpu / max(tokens, 1), 1),
        "train_windows": len(train),
        "heldout_windows": len(held),
        "final_loss": losses[-1] if losses else None,
        "heldout": None if before is None else {"kl_logit_lens": before, "kl_tuned_lens": after},
        "kl_units": "nats",  # 0.2 lenses recorded bits and no units
        "model_source": src.as_dict(),
    }
    return lens


def _optimizer(lens, cfg: TunedLensConfig):
    import torch

    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(lens.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        lens.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
    )


class _frozen:
    """The model's parameters without gradients (and the model in eval mode) while translators train."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [(q, q.requires_grad) for q in self.model.parameters()]
        self.training = self.model.training
        for q, _ in self.saved:
            q.requires_grad_(False)
        self.model.eval()

    def __exit__(self, *exc):
        for q, flag in self.saved:
            q.requires_grad_(flag)
        self.model.train(self.training)


def _step_loss(model, lens, batch, owners: list[int], n: int) -> float:
    """Backpropagate one batch's loss (sum over rows of the KL(final || row) summed over its tokens, over `n`:
    the tokens of the whole batch, of which `batch` may be one rank's part); return the mean KL a row, nats.
    """
    import torch

    from probes.core import stats
    from probes.core.runner import runner_for

    if batch is None:  # this rank's share of a small batch is empty
        return 0.0
    runner = runner_for(model)
    flat = [r[batch.mask] for r in runner.streams(batch.ids)]  # L+1 of (tokens, d_model)
    total = 0.0
    step = stats.chunk_positions(model.cfg.d_vocab)
    for s in range(0, flat[0].shape[0], step):
        part = slice(s, s + step)
        with torch.no_grad():
            logp_f = runner.logprobs(flat[-1][part])  # (chunk, vocab)
            p_f = logp_f.exp()
        for o in owners:
            logq = runner.logprobs(lens.translate(flat[o][part], o))
            kl = stats.kl(logp_f, logq, p_f).sum() / n
            kl.backward()
            total += kl.item()
    return total / max(1, len(owners))


def _all_reduce_grads(lens, loss: float) -> float:
    """Sum the translators' gradients and the loss over the ranks (what one process computes on the whole
    batch); the loss, summed."""
    import torch

    if distributed.size() == 1:
        return loss
    params = list(lens.parameters())
    grads = [torch.zeros_like(q) if q.grad is None else q.grad for q in params]  # None: no tokens here
    flat = torch.cat(
        [g.reshape(-1).double().cpu() for g in grads] + [torch.tensor([loss], dtype=torch.float64)]
    )
    summed = torch.from_numpy(distributed.all_sum(flat.numpy(), "adding up the gradients"))
    at = 0
    for q in params:
        q.grad = summed[at : at + q.numel()].view_as(q).to(q.device, q.dtype)
        at += q.numel()
    return float(summed[-1])


def heldout_kl(model, lens, items, cfg: TunedLensConfig) -> list[float]:
    """Per row (L+1), the mean KL(final || row) in nats over the windows `items`, up to cfg.max_heldout_tokens
    tokens."""
    import numpy as np
    import torch

    from probes.core import stats
    from probes.core.runner import runner_for
    from probes.core.windows import batches

    runner = runner_for(model)
    chosen, n_all = [], 0  # the batches up to the token budget (so every rank agrees on them)
    for batch in batches(model, items, max_tokens=4096):
        chosen.append(batch)
        n_all += int(batch.mask.sum())
        if n_all >= cfg.max_heldout_tokens:
            break
    sums = np.zeros(model.cfg.n_layers + 1)
    step = stats.chunk_positions(model.cfg.d_vocab)
    with torch.no_grad():
        for batch in distributed.mine(chosen):  # under torchrun, each rank scores its share
            flat = [r[batch.mask] for r in runner.streams(batch.ids)]  # L+1 of (tokens, d_model)
            flat = lens.transform_rows(model, flat)
            for s in range(0, flat[0].shape[0], step):
                logp_f = runner.logprobs(flat[-1][s : s + step])  # (chunk, vocab)
                p_f = logp_f.exp()
                for r, x in enumerate(flat[:-1]):
                    sums[r] += stats.kl(logp_f, runner.logprobs(x[s : s + step]), p_f).sum().item()
    sums = distributed.all_sum(sums, "adding up the held-out KL")
    return [round(float(v) / max(n_all, 1), 6) for v in sums]
