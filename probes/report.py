"""The study report: sampling, embeddings, pruning and the logit lens of one model, as Markdown with figures."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from probes.errors import ProbesError
from probes.io import check_dir, save_figure, write_text

# The seed study's sampling settings: nanoGPT's defaults, then the three contrasts.
STUDY_SETTINGS = [(0.8, 200), (0.1, None), (10.0, None), (10.0, 2)]
PRUNE_SPECS = ["odd", "even", "last-half"]


def check_out_dir(out, force: bool) -> Path:
    """An output folder that does not exist, is empty, or may be replaced (`force`)."""
    p = Path(out).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise ProbesError(f"--out {str(p)!r} is a file; give a folder")
    protected = {Path.cwd().resolve(), Path.home().resolve(), Path(p.anchor)} | set(Path.cwd().resolve().parents)
    if p in protected:
        raise ProbesError(f"--out {str(p)!r} is the current folder, one of its parents or the home folder; give a new folder")
    if p.is_dir() and any(p.iterdir()):
        if not force:
            raise ProbesError(f"--out {str(p)!r} exists and is not empty; pass --force to replace it")
        if not (p / "report.md").is_file():
            # --force replaces a previous report, never an unrelated folder that happens to be named.
            raise ProbesError(f"--out {str(p)!r} holds files but no report.md; refusing to replace it even with --force")
    check_dir(p.parent)  # the report is built beside `out`, then moved into place
    return p


@dataclass
class Report:
    """Markdown under construction, plus the figures it shows."""

    out: Path
    lines: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def figure(self, fig, name: str, caption: str) -> None:
        save_figure(fig, self.out / name)
        self.figures.append(name)
        self.add(f"![{caption}]({name})", "", f"*{caption}*", "")


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v).replace("|", "\\|")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(cell(v) for v in r) + " |" for r in rows
    ]


def _quote(text: str, limit: int = 600) -> list[str]:
    text = text if len(text) <= limit else text[:limit] + " …"
    return ["```text", text.replace("```", "'''"), "```"]


def _tok(s: str) -> str:
    return "`" + repr(s)[1:-1].replace("`", "'") + "`"


def _compare(a: float, b: float, more: str, less: str) -> str:
    return more if b > a else less if b < a else "the same as"


def build_report(
    model,
    out,
    *,
    prompt: str = "ROMEO:",
    lens_prompt: str = "JULIET: Good night, good night! Parting is such sweet sorrow",
    max_new_tokens: int = 60,
    num_samples: int = 2,
    seed: int = 1337,
    command: str = "probes report",
    force: bool = False,
    eval_text: str | None = None,
    progress=None,
) -> Path:
    """Run the whole study on `model` and write `out/report.md` with its figures; return its path.

    Everything is written into a temporary folder beside `out` and moved into place at the end,
    so an error or Ctrl-C leaves any previous report untouched.
    """
    import probes
    from probes.embedding import embeddings
    from probes.info import model_info
    from probes.lens import logit_lens
    from probes.lens_generation import generation_lens
    from probes.meta import model_meta
    from probes.metrics import distinct_n, repeated_ngram_fraction
    from probes.next_token import next_token_distribution
    from probes.prune import compare_pruned, sweep_blocks
    from probes.sampling import SamplingSettings

    say = progress or (lambda msg: None)
    dest = check_out_dir(out, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        r = Report(tmp)
        info = model_info(model)
        meta = model_meta(model)
        say("[1/5] model")
        r.add(f"# A study of `{info['name']}`", "",
              "Made by `probes report`: sampling and temperature, the embedding matrix, skipped blocks and the "
              "logit lens, for one model. Every sentence below is computed from the numbers beside it.", "",
              "## 1. The model", "")
        r.add(*_md_table(["property", "value"], [
            ["name", info["name"]], ["source", f"{info['source']} (`{info['path']}`)"], ["weights sha256", info["sha256"]],
            ["blocks", info["n_layers"]], ["heads", info["n_heads"]], ["d_model", info["d_model"]],
            ["d_mlp", info["d_mlp"]], ["vocabulary", info["d_vocab"]], ["context", info["n_ctx"]],
            ["parameters", f"{info['n_params']:,}"], ["dtype / device", f"{info['dtype']} / {info['device']}"],
        ]), "")
        card = Path(info["path"]) / "MODEL_CARD.md"
        if card.is_file():
            r.add(f"How it was trained: see its model card (`{card}`).", "")

        # 2. Sampling
        say("[2/5] sampling at four settings")
        r.add("## 2. Sampling: temperature and top-k", "",
              f"Prompt {prompt!r}, {num_samples} samples of {max_new_tokens} tokens per setting, seed {seed}. "
              "A token is drawn from softmax(logits / T) restricted to the k most likely tokens.", "")
        grid = [SamplingSettings(t, k, None) for t, k in STUDY_SETTINGS]
        dist = next_token_distribution(model, prompt, settings=grid, top=12)
        rows = []
        for s, d in zip(grid, dist.settings):
            smp = probes.generate(model, prompt, num_samples=num_samples, max_new_tokens=max_new_tokens,
                                  temperature=s.temperature, top_k=s.top_k, seed=seed)
            toks = [t for x in smp for t in x.tokens]
            d2 = sum(distinct_n(x.tokens, 2) for x in smp) / len(smp)
            rep = sum(repeated_ngram_fraction(x.tokens, 4) for x in smp) / len(smp)
            rows.append([s.label(), d.entropy_bits, d.tokens_for_99, d.top1_prob, d2, rep])
            r.add(f"### {s.label()}", "")
            for k, x in enumerate(smp, 1):
                r.add(f"Sample {k}:", "", *_quote(prompt + x.text), "")
            del toks
        r.add("Next-token distribution after the prompt, and what the samples did:", "")
        r.add(*_md_table(["setting", "entropy (bits)", "tokens for 99% mass", "top-1 prob", "distinct-2", "repeated 4-grams"],
                         rows), "")
        raw = dist.raw
        lo, hi, hik2 = dist.settings[1], dist.settings[2], dist.settings[3]
        r.add(f"At T=1 with no truncation the next-token distribution has {raw.entropy_bits:.2f} bits of entropy and "
              f"needs {raw.tokens_for_99} tokens to cover 99% of the mass. At T=0.1 the top token "
              f"{_tok(lo.top_tokens[0])} carries {lo.top1_prob:.1%} of the mass ({lo.entropy_bits:.2f} bits): "
              f"dividing the logits by 0.1 multiplies their gaps by 10. At T=10 the "
              f"entropy is {hi.entropy_bits:.2f} bits and 99% of the mass is spread over {hi.tokens_for_99} of "
              f"{info['d_vocab']} tokens: the logits are flattened toward uniform, so most draws are tokens the model "
              f"rates as unlikely. With top-k 2 at T=10 only {hik2.support} tokens remain possible "
              f"({_tok(hik2.top_tokens[0])} {hik2.top_probs[0]:.1%}"
              + (f", {_tok(hik2.top_tokens[1])} {hik2.top_probs[1]:.1%}" if len(hik2.top_tokens) > 1 else "")
              + f"): each step draws one of the model's {hik2.support} best guesses. The samples' distinct-2 ratios go from {rows[1][4]:.2f} (T=0.1) to {rows[2][4]:.2f} "
              f"(T=10) and {rows[3][4]:.2f} (T=10, top-k 2).", "")
        r.figure(dist.figure(), "next_token.png", "Next-token distribution under each setting (grey: raw T=1).")

        # 3. Embeddings
        say("[3/5] embeddings")
        emb = embeddings(model)
        ed = emb.as_dict()
        r.add("## 3. The embedding matrix: common and rare words", "",
              "Statistics of the checkpoint's own `wte` (not TransformerLens' centred `W_E`). The id used for a "
              "word is its first token; GPT-2 usually sees a word inside text with a leading space, shown beside it.", "")
        rows = [[w["word"], w["group"], " ".join(_tok(t) for t in w["tokens"]), w["id"], w["norm"],
                 f"{w['norm_percentile']:.0f}", " ".join(_tok(t) for t in w["space_tokens"]),
                 ", ".join(_tok(n["token"]) for n in w["neighbours"][:3])] for w in ed["words"]]
        r.add(*_md_table(["word", "group", "tokens", "id used", "norm", "norm pct", "with space", "nearest"], rows), "")
        c = ed["summary"]["comparison"]
        r.add(f"Mean L2 norm of the id used: common {c['mean_norm_common']:.4f} (mean percentile "
              f"{c['mean_norm_percentile_common']:.0f}), rare {c['mean_norm_rare']:.4f} (percentile "
              f"{c['mean_norm_percentile_rare']:.0f}); common/rare ratio {c['norm_ratio']:.3f}. Mean pairwise cosine "
              f"within the group: common {c['mean_cosine_common']:.3f}, rare {c['mean_cosine_rare']:.3f}. "
              f"{c['split_common']} of {c['n_common']} common and {c['split_rare']} of {c['n_rare']} rare words split "
              "into several tokens, so their 'id used' is a word piece, often a single letter.", "")
        r.figure(emb.figure_norms(), "embed_norms.png", "L2 norms of the chosen tokens; the line is the vocabulary median.")
        r.figure(emb.figure_cosine(), "embed_cosine.png", "Pairwise cosine similarity within each group.")
        r.figure(emb.figure_scatter(), "embed_scatter.png", "Norm of every token against its id (BPE ids roughly follow merge order, a proxy for frequency).")

        # 4. Pruning
        say("[4/5] pruning: full vs " + ", ".join(PRUNE_SPECS))
        comp = compare_pruned(model, prompt, PRUNE_SPECS, max_new_tokens=max_new_tokens, seed=seed,
                              eval_text=eval_text, progress=say)
        r.add("## 4. Skipping blocks", "",
              f"Greedy continuations of {prompt!r} ({max_new_tokens} tokens) by the full model and with blocks skipped "
              "(a skipped block passes the residual stream through unchanged and is not computed). "
              f"Held-out loss is measured on `{comp.eval_source}`.", "")
        for run in comp.runs:
            title = "Full model" if run.name == "full" else f"Skip {run.name} (blocks {', '.join(map(str, run.skipped))})"
            r.add(f"**{title}**", "", *_quote(prompt + run.samples[0].text), "")
        from probes.prune import METRIC_LABELS

        keys = ["distinct_2", "repeated_4gram_fraction", "longest_repeated_span", "ppl_under_full", "tf_kl",
                "tf_top1_agreement", "eval_loss", "eval_loss_increase", "tokens_per_second"]
        r.add(*_md_table(["metric"] + [x.name for x in comp.runs],
                         [[METRIC_LABELS[k]] + [x.metrics.get(k) for x in comp.runs] for k in keys]), "")
        full = comp.runs[0].metrics
        sentences = []
        for run in comp.runs[1:]:
            m = run.metrics
            sentences.append(
                f"Skipping {run.name} raised the held-out loss from {full['eval_loss']:.3f} to {m['eval_loss']:.3f} "
                f"nats/token; on the full model's own continuation its top-1 prediction agreed {m['tf_top1_agreement']:.0%} "
                f"of the time (mean KL {m['tf_kl']:.3f} nats). Its text's distinct-2 was {m['distinct_2']:.2f} "
                f"({_compare(full['distinct_2'], m['distinct_2'], 'higher than', 'lower than')} the full model's "
                f"{full['distinct_2']:.2f}), with {m['repeated_4gram_fraction']:.0%} repeated 4-grams against "
                f"{full['repeated_4gram_fraction']:.0%}, and the full model scores it at perplexity "
                f"{m['ppl_under_full']:.1f} against {full['ppl_under_full']:.1f} for its own text.")
        r.add(" ".join(sentences), "")
        r.figure(comp.figure(), "prune.png", "Full model vs skipped blocks: metrics, and per-token KL along the full model's continuation.")
        say("[4/5] block sweep")
        sw = sweep_blocks(model, eval_text=eval_text, progress=say)
        r.add("### Which blocks matter", "", *_md_table(
            ["block", "loss increase", "KL", "top-1 agr.", "Block Influence", "angular distance"],
            [[b["block"], b["loss_increase"], b["kl"], b["top1_agreement"], b["block_influence"], b["angular_distance"]]
             for b in sw.blocks]), "")
        ranked = sw.ranked()
        r.add(f"Skipped alone, block {ranked[0]['block']} costs the most (+{ranked[0]['loss_increase']:.3f} nats/token) "
              f"and block {ranked[-1]['block']} the least (+{ranked[-1]['loss_increase']:.3f}).", "")
        r.add(*_md_table(["strategy", "skipped", "loss", "increase", "KL", "top-1 agr."],
                         [[s["name"], ",".join(map(str, s["skipped"])), s["loss"], s["loss_increase"], s["kl"],
                           s["top1_agreement"]] for s in sw.strategies]), "")
        best = min(sw.strategies, key=lambda s: s["loss"])
        r.add(f"Of these strategies, skipping {best['name']} keeps the held-out loss lowest ({best['loss']:.3f}).", "")
        r.figure(sw.figure(), "sweep.png", "Loss increase when each block is skipped alone, with Block Influence and angular distance.")

        # 5. Logit lens
        say("[5/5] logit lens")
        lens = logit_lens(model, lens_prompt)
        r.add("## 5. The logit lens: where the prediction forms", "",
              "Row `embed` is the residual stream entering block 0 and row *i* the stream after block *i* (the last row "
              "is the model's output); each is decoded through the final LayerNorm, with its statistics recomputed "
              f"from that row, and the unembedding. Prompt {lens_prompt!r}.", "")
        kl = lens.kl_to_final.mean(axis=1)
        ent = lens.entropy.mean(axis=1)
        r.add(*_md_table(["row", "mean entropy (bits)", "mean KL to final (bits)"],
                         [[lbl, float(e), float(k)] for lbl, e, k in zip(lens.row_labels, ent, kl)]), "")
        r.add(f"Mean KL to the final distribution falls from {kl[0]:.2f} bits at the first row to {kl[-2]:.2f} at the "
              f"row before last; mean entropy goes from {ent[0]:.2f} to {ent[-1]:.2f} bits.", "")
        r.figure(lens.figure(metric="prob"), "lens.png", "Logit lens: top-1 token per layer and position, coloured by its probability.")
        gl = generation_lens(model, prompt, max_new_tokens=30, greedy=True, seed=seed)
        em = gl.emergence
        known = [e for e in em if e is not None]
        r.add(f"Alongside greedy generation from {prompt!r}: the emergence layer of a token is the first row from which "
              f"it stays top-1. Of {len(em)} generated tokens, "
              + (f"{len(known)} become top-1 at some row and stay there; counting `embed` as row 0 and the output as row "
                 f"{lens.n_rows - 1}, their mean emergence row is {sum(known) / len(known):.1f}, and "
                 f"{sum(1 for e in known if e == lens.n_rows - 1)} appear only at the output row." if known
                 else "none is top-1 before the output.")
              , "")
        r.figure(gl.figure(), "lens_generation.png", "Rank of each generated token across the rows; emergence layers marked.")
        with probes.skip(model, "odd"):
            lens_odd = logit_lens(model, lens_prompt)
        r.figure(lens_odd.figure(metric="prob"), "lens_skip_odd.png",
                 "The same lens with the odd blocks skipped: skipped rows repeat the row before them.")

        # 6. Reproduce
        v = meta["versions"]
        r.add("## 6. How to reproduce", "", "```", command, "```", "",
              f"probes {v.get('probes')}, transformer-lens {v.get('transformer-lens')}, transformers "
              f"{v.get('transformers')}, torch {v.get('torch')}; seed {seed}; weights sha256 {info['sha256']}.", "")
        write_text(tmp / "report.md", "\n".join(r.lines) + "\n")
        _html(tmp, r.lines)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "report.md"


def _html(folder: Path, lines: list[str]) -> None:
    """A minimal HTML copy (headings, paragraphs, tables, code, images) for a browser."""
    import html

    out, in_code, in_table = [], False, False
    for line in lines:
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            if set(line.replace("|", "").strip()) <= {"-"}:
                continue
            cells = [html.escape(c.strip()) for c in line.strip("|").split(" | ")]
            if not in_table:
                out.append("<table border=1 cellpadding=3>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            src = line.rsplit("](", 1)[1][:-1]
            out.append(f'<p><img src="{html.escape(src)}" style="max-width:100%"></p>')
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    body = "\n".join(out)
    write_text(folder / "report.html", f"<!doctype html><meta charset=utf-8><title>probes report</title>"
               f"<body style='font-family:sans-serif;max-width:60em;margin:auto'>{body}</body>\n")
