"""The report's sections: each turns study results into Markdown lines, with no model and no files.

    lines = sampling_section("ROMEO:", config, dist, samples_by_setting)

A section reads only the attributes of the result objects it is given (so a test can hand it a
`SimpleNamespace`), writes every number through `fmt` ('n/a' when a short run has none) and every
token through `tok`. Figures appear as `![caption](name.png)` lines; the builder saves the files.
"""

from __future__ import annotations

from probes.core.sampling import SamplingConfig
from probes.report.markdown import code, escape, fence, figure, fmt, md_table, missing, quote, tok, toks
from probes.studies.defaults import EVAL_MAX_TOKENS, REPORT_SWEEP_TOKENS

# The seed study's sampling settings, in the order the sampling prose reads them: nanoGPT's
# defaults, then the three contrasts (a cold, a hot, and a hot but truncated distribution).
# The classic contrasts: nanoGPT's defaults (SamplingConfig's own), then very low and very high T, then
# high T with k=2.
STUDY_SETTINGS = [(SamplingConfig.temperature, SamplingConfig.top_k), (0.1, None), (10.0, None), (10.0, 2)]
PRUNE_SPECS = ["odd", "even", "last-half"]
PRUNE_METRICS = [
    "distinct_2",
    "repeated_4gram_fraction",
    "longest_repeated_span",
    "ppl_under_full",
    "tf_kl",
    "tf_top1_agreement",
    "eval_loss",
    "eval_loss_increase",
]  # no tokens/s: one cold run is no measurement


def study_settings(config: SamplingConfig) -> list[SamplingConfig]:
    """STUDY_SETTINGS as configs; the rest (tokens, samples, seed) from `config`."""
    return [
        SamplingConfig.of(config, temperature=t, top_k=k, top_p=None, greedy=False) for t, k in STUDY_SETTINGS
    ]


def _mean(values) -> float | None:
    vals = [v for v in values if not missing(v)]
    return sum(vals) / len(vals) if vals else None


def _prompt(prompt: str) -> str:
    return escape(repr(prompt))


def title_section(info: dict) -> list[str]:
    return [
        f"# A study of {code(info['name'])}",
        "",
        "Made by `probes report`: sampling and temperature, the embedding matrix, skipped blocks and the "
        "logit lens, for one model. Every sentence below is computed from the numbers beside it.",
        "",
    ]


def _why(why: str) -> str:
    """'The defaults suit the bundled Shakespeare model: Shakespeare prompts and ...' from `StudyDefaults.why`
    ('the bundled Shakespeare model: Shakespeare prompts and ...')."""
    kind, _, what = why.partition(": ")
    return f"The defaults suit {escape(kind)}: {escape(what)}." if what else f"Defaults: {escape(why)}."


def inputs_section(
    prompt: str, prune_prompt: str, lens_prompt: str, eval_text: str | None, why: str, given: dict
) -> list[str]:
    """Which prompts and held-out text the report used, and why: `why` for the defaults, `given[k]` True where
    the user chose."""

    def src(k: str) -> str:
        return "given" if given.get(k) else "default"

    held = (
        f"held-out text {code(eval_text)} ({src('eval')})"
        if eval_text
        else (
            "no held-out text: scoring was off (`--no-eval`), so there is no held-out loss and no block sweep"
        )
    )
    return [
        f"Inputs: sampling prompt {_prompt(prompt)} ({src('prompt')}), pruning prompt "
        f"{_prompt(prune_prompt)} ({src('prune')}), lens prompt {_prompt(lens_prompt)} ({src('lens')}); "
        f"{held}. {_why(why)}",
        "",
    ]


def model_section(info: dict, card: str | None = None) -> list[str]:
    """The architecture table from `model_info`; `card`, the model card's path when it has one."""
    source = (
        f"{escape(info['source'])} ({code(info['path'])})" if info.get("path") else escape(info["source"])
    )
    lines = [
        "## 1. The model",
        "",
        *md_table(
            ["property", "value"],
            [
                ["name", escape(info["name"])],
                ["source", source],
                ["weights sha256", info["sha256"]],
                ["blocks", info["n_layers"]],
                ["heads", info["n_heads"]],
                ["d_model", info["d_model"]],
                ["d_mlp", info["d_mlp"]],
                ["vocabulary", info["d_vocab"]],
                ["context", info["n_ctx"]],
                ["parameters", fmt(info["n_params"], ",")],
                ["dtype / device", f"{info['dtype']} / {info['device']}"],
            ],
        ),
        "",
    ]
    if card:
        lines += [f"How it was trained: see its model card ({code(card)}).", ""]
    return lines


def sample_stats(samples) -> tuple[float | None, float | None]:
    """(distinct-2, fraction of repeated 4-grams), each a mean over the samples that have one."""
    from probes.studies.prune.metrics import distinct_n, repeated_ngram_fraction

    return (
        _mean(distinct_n(s.tokens, 2) for s in samples),
        _mean(repeated_ngram_fraction(s.tokens, 4) for s in samples),
    )


def sampling_section(prompt: str, config: SamplingConfig, dist, samples_by_setting: list) -> list[str]:
    """Samples and next-token statistics at each setting of `dist.settings` (STUDY_SETTINGS' order).

    `dist` is a NextTokenDistribution (`.raw`, `.settings`, `.d_vocab`); `samples_by_setting[i]`
    the samples drawn with `dist.settings[i].config`.
    """
    from probes.studies.next_token import POSSIBLE_P

    lines = [
        "## 2. Sampling: temperature and top-k",
        "",
        f"Prompt {_prompt(prompt)}, {config.num_samples} samples of {config.max_new_tokens} tokens per "
        f"setting, seed {config.seed}. A token is drawn from softmax(logits / T) restricted to the k most "
        "likely tokens.",
        "",
    ]
    rows, distinct2 = [], []
    for d, samples in zip(dist.settings, samples_by_setting):
        d2, rep = sample_stats(samples)
        distinct2.append(d2)
        rows.append([d.config.label(), d.entropy, d.tokens_for_99, d.top1_prob, d2, rep])
        lines += [f"### {d.config.label()}", ""]
        for k, s in enumerate(samples, 1):
            lines += [f"Sample {k}:", "", *quote(prompt + s.text), ""]
    lines += [
        "Next-token distribution after the prompt, and what the samples did:",
        "",
        *md_table(
            [
                "setting",
                "entropy (nats)",
                "tokens for 99% mass",
                "top-1 prob",
                "distinct-2",
                "repeated 4-grams",
            ],
            rows,
        ),
        "",
    ]
    raw, (_, lo, hi, hik2) = dist.raw, dist.settings
    T = lambda d: fmt(d.config.temperature, "g")  # noqa: E731
    top2 = [f"{tok(t)} {fmt(p, '.1%')}" for t, p in zip(hik2.top_str_tokens[:2], hik2.top_probs[:2])]
    lines += [
        f"At T=1 with no truncation the next-token distribution has {fmt(raw.entropy, '.2f')} nats of "
        f"entropy and needs {raw.tokens_for_99} tokens to cover 99% of the mass. At T={T(lo)} the top token "
        f"{tok(lo.top_str_tokens[0])} carries {fmt(lo.top1_prob, '.1%')} of the mass "
        f"({fmt(lo.entropy, '.2f')} nats): dividing the logits by {T(lo)} multiplies their gaps by "
        f"{fmt(1 / lo.config.temperature, 'g')}. At T={T(hi)} the entropy is {fmt(hi.entropy, '.2f')} "
        f"nats and 99% of the mass is spread over {hi.tokens_for_99} of {dist.d_vocab} tokens: the logits "
        "are flattened toward uniform, so most draws are tokens the model rates as unlikely. With top-k "
        f"{hik2.config.top_k} at T={T(hik2)} only {hik2.support} tokens remain possible with p ≥ "
        f"{POSSIBLE_P:g} ({', '.join(top2)}): each step draws one of the model's {hik2.support} best "
        f"guesses. The samples' distinct-2 ratios go from {fmt(distinct2[1], '.2f')} (T={T(lo)}) to "
        f"{fmt(distinct2[2], '.2f')} (T={T(hi)}) and {fmt(distinct2[3], '.2f')} (T={T(hik2)}, top-k "
        f"{hik2.config.top_k}).",
        "",
    ]
    return lines + figure("next_token.png", "Next-token distribution under each setting (grey: raw T=1).")


def _input_key(emb: dict) -> str:
    return (emb["summary"].get("matrices") or {}).get("tokens") or "wte"


def _by_form(groups: dict) -> str:
    """' Mean norm in each token form: common first 0.36, space 0.28, ...; rare ...' (empty without them)."""
    parts = [
        f"{escape(g)} " + ", ".join(f"{f} {fmt(v, '.4f')}" for f, v in s["mean_norm_by_form"].items())
        for g, s in groups.items()
        if s.get("mean_norm_by_form")
    ]
    return f" Mean norm in each token form: {'; '.join(parts)}." if parts else ""


def embeddings_section(emb: dict) -> list[str]:
    """The chosen words' tokens, norms, neighbours and cosines in one token form; `emb` is
    `Embeddings.as_dict()`."""
    form = emb["token_form"]
    lines = [
        "## 3. The embedding matrix: common and rare words",
        "",
        f"Statistics of the checkpoint's own input embedding, `{escape(_input_key(emb))}` (not "
        "TransformerLens' centred `W_E`). Token form "
        f"`{form}`: each word's vector is read from the {escape(emb['token_form_means'])}; the tokens used "
        "are listed per word. (`probes embed --token-form first` gives the classic study's numbers: the "
        "first token of the bare word, often a single letter.)",
        "",
    ]
    rows = [
        [
            escape(w["word"]),
            escape(w["group"]),
            toks(w["used_str_tokens"]),
            ",".join(map(str, w["ids"])),
            w["norm"],
            fmt(w["norm_percentile"], ".0f"),
            toks(w["str_tokens"]),
            toks((n["token"] for n in w["neighbours"][:3]), ", "),
        ]
        for w in emb["words"]
    ]
    lines += [
        *md_table(
            [
                "word",
                "group",
                f"tokens used ({escape(form)})",
                "ids",
                "norm",
                "norm pct",
                "bare word",
                "nearest",
            ],
            rows,
        ),
        "",
    ]
    c = emb["summary"].get("comparison")
    if c:  # None unless both a common and a rare group were measured
        lines += [
            f"Mean L2 norm of the words' vectors: common {fmt(c['mean_norm_common'], '.4f')} (mean "
            f"percentile {fmt(c['mean_norm_percentile_common'], '.0f')}), rare "
            f"{fmt(c['mean_norm_rare'], '.4f')} (percentile {fmt(c['mean_norm_percentile_rare'], '.0f')}); "
            f"common/rare ratio {fmt(c['norm_ratio'], '.3f')}. Mean pairwise cosine within the group: common "
            f"{fmt(c['mean_cosine_common'], '.3f')}, rare {fmt(c['mean_cosine_rare'], '.3f')}; between a "
            f"common and a rare word {fmt(c.get('mean_cross_cosine'), '.3f')}. In this form "
            f"{c['split_common']} of {c['n_common']} common and {c['split_rare']} of {c['n_rare']} rare "
            "words are several tokens, so their vector reads "
            f"{'the mean of the pieces' if form == 'mean' else 'one piece of the word'}."
            + (
                f" For {c['weak_common']} common and {c['weak_rare']} rare words that piece is a bare space "
                "or a single character, so their numbers measure the piece, hardly the word."
                if c.get("weak_common") or c.get("weak_rare")
                else ""
            )
            + _by_form(emb["summary"].get("groups") or {}),
            "",
        ]
    for group, matrix in (emb.get("cosine") or {}).items():  # as tables too: the figure is wide
        names = [w["word"] for w in emb["words"] if w["group"] == group]
        lines += [
            f"Cosine similarity within the {escape(group)} group:",
            "",
            *md_table(
                ["", *map(escape, names)],
                [[escape(n), *[fmt(v, ".2f") for v in row]] for n, row in zip(names, matrix)],
            ),
            "",
        ]
    x = emb.get("cross_cosine")
    if x:
        cols = [w["word"] for w in emb["words"] if w["group"] == x["columns"]]
        names = iter(w["word"] for w in emb["words"] if w["group"] == x["rows"])
        lines += [
            f"Cosine similarity, {x['rows']} (rows) × {x['columns']} (columns):",
            "",
            *md_table(
                ["", *map(escape, cols)],
                [[escape(next(names)), *[fmt(v, ".2f") for v in row]] for row in x["matrix"]],
            ),
            "",
        ]
    pca = emb["pca"]["explained_variance"]
    return (
        lines
        + figure(
            "embed_norms.png",
            f"L2 norms of the words' vectors (token form {form}, beside another form); "
            "the line is the vocabulary median.",
        )
        + figure("embed_cosine.png", "Pairwise cosine similarity within each group, and common × rare.")
        + figure(
            "embed_scatter.png",
            "Norm of every token against its id (BPE ids roughly follow merge order, "
            "a proxy for frequency); the tokens used are marked.",
        )
        + figure(
            "embed_pca.png",
            f"Every token's embedding in the first two principal components of `wte` "
            f"({fmt(100 * pca[0], '.1f')}% and {fmt(100 * pca[1], '.1f')}% of the variance), "
            "the words' vectors marked.",
        )
    )


def _compare(a, b, more: str, less: str) -> str:
    if missing(a) or missing(b):
        return "not comparable with"
    return more if b > a else less if b < a else "the same as"


def _run_sentence(run, full: dict) -> str:
    m = run.metrics
    moved = _compare(full["eval_loss"], m["eval_loss"], "raised", "lowered")  # a lower loss is no cost
    held = (
        ""
        if missing(full["eval_loss"])
        # held-out scoring off
        else f" {moved if moved in ('raised', 'lowered') else 'changed'} the held-out loss from "
        f"{fmt(full['eval_loss'], '.3f')} to {fmt(m['eval_loss'], '.3f')} nats/token;"
    )
    return (
        f"Skipping {escape(run.name)}{held or ':'} on the full model's own continuation its top-1 prediction "
        f"agreed {fmt(m['tf_top1_agreement'], '.0%')} of the time (mean KL {fmt(m['tf_kl'], '.3f')} nats). "
        f"Its text's distinct-2 was {fmt(m['distinct_2'], '.2f')} "
        f"({_compare(full['distinct_2'], m['distinct_2'], 'higher than', 'lower than')} the full model's "
        f"{fmt(full['distinct_2'], '.2f')}), with {fmt(m['repeated_4gram_fraction'], '.0%')} repeated "
        f"4-grams against {fmt(full['repeated_4gram_fraction'], '.0%')}, and the full model scores it at "
        f"perplexity {fmt(m['ppl_under_full'], '.1f')} against {fmt(full['ppl_under_full'], '.1f')} for its "
        "own text."
    )


def _tokens(n: int | None) -> str:
    return f" ({fmt(n, ',')} tokens)" if n else ""


def _comparison_lines(prompt: str, comp) -> list[str]:
    from probes.studies.prune.compare import METRIC_LABELS

    lines = [
        "## 4. Skipping blocks",
        "",
        f"Greedy continuations of {_prompt(prompt)} ({comp.config.max_new_tokens} tokens) by the full model "
        "and with blocks skipped (a skipped block passes the residual stream through unchanged and is not "
        "computed). "
        + (
            "Held-out loss is measured on "
            f"{code(comp.eval_text)}{_tokens(getattr(comp, 'eval_tokens', None))}."
            if comp.eval_text
            else "Held-out scoring was off (`--no-eval`)."
        ),
        "",
    ]
    for run in comp.runs:
        title = (
            "Full model"
            if run.name == "full"
            else f"Skip {escape(run.name)} (blocks {', '.join(map(str, run.skipped_blocks))})"
        )
        lines += [f"**{title}**", "", *quote(prompt + run.samples[0].text), ""]
    lines += [
        *md_table(
            ["metric"] + [escape(r.name) for r in comp.runs],
            [
                [METRIC_LABELS[k]] + [r.metrics.get(k) for r in comp.runs]
                for k in PRUNE_METRICS
                if comp.eval_text or not k.startswith("eval_")
            ],
        ),
        "",
    ]
    full = comp.runs[0].metrics
    lines += [" ".join(_run_sentence(run, full) for run in comp.runs[1:]), ""]
    return lines + figure(
        "prune.png",
        "Full model vs skipped blocks: metrics, and per-token KL along the full model's continuation.",
    )


def _sweep_lines(sweep) -> list[str]:
    lines = [
        "### Which blocks matter",
        "",
        f"Each block skipped alone, scored on {code(sweep.eval_text)}{_tokens(sweep.eval_tokens)}: the "
        f"report scores at most {REPORT_SWEEP_TOKENS} tokens of a text (18 runs on every token); `probes "
        f"prune --sweep` scores up to {EVAL_MAX_TOKENS:,}.",
        "",
        *md_table(
            ["block", "loss change", "KL", "top-1 agr.", "Block Influence", "angular distance"],
            [
                [
                    b["block"],
                    b["loss_increase"],
                    b["kl"],
                    b["top1_agreement"],
                    b["block_influence"],
                    b["angular_distance"],
                ]
                for b in sweep.blocks
            ],
        ),
        "",
    ]
    ranked = sweep.ranked()
    lines += [_sweep_sentence(ranked[0], ranked[-1]), ""]
    lines += [
        *md_table(
            ["strategy", "skipped", "loss", "loss change", "KL", "top-1 agr."],
            [
                [
                    escape(s["name"]),
                    ",".join(map(str, s["skipped_blocks"])),
                    s["loss"],
                    s["loss_increase"],
                    s["kl"],
                    s["top1_agreement"],
                ]
                for s in sweep.strategies
            ],
        ),
        "",
    ]
    scored = [s for s in sweep.strategies if not missing(s["loss"])]
    if scored:
        best = min(scored, key=lambda s: s["loss"])
        lines += [
            f"Of these strategies, skipping {escape(best['name'])} keeps the held-out loss lowest "
            f"({fmt(best['loss'], '.3f')}).",
            "",
        ]
    return lines + figure(
        "sweep.png",
        "Change in held-out loss when each block is skipped alone (above 0: worse), "
        "with Block Influence and angular distance.",
    )


def _sweep_sentence(most: dict, least: dict) -> str:
    """The blocks whose skipping changes the held-out loss most and least; a decrease is said as one, not as a
    cost."""
    from probes.numbers import show_change

    raises = missing(most["loss_increase"]) or most["loss_increase"] >= 0
    worst = (
        f"Skipped alone, block {most['block']} raises the held-out loss the most "
        f"({fmt(most['loss_increase'], '+.3f')} nats/token)"
        if raises
        else f"Skipped alone, every block lowers the held-out loss; block {most['block']} the least "
        f"({show_change(most['loss_increase'], unit='nats/token')})"
    )
    change = show_change(least["loss_increase"], unit="nats/token")
    if change.endswith("(lower)"):
        return (
            f"{worst}; skipping block {least['block']} changes it by {change}: the model does better on this "
            "text without that block."
        )
    if change.endswith("(no change)"):
        return f"{worst}; skipping block {least['block']} leaves it unchanged ({change.split(' (')[0]})."
    return f"{worst} and block {least['block']} the least ({fmt(least['loss_increase'], '+.3f')})."


def prune_section(prompt: str, comp, sweep) -> list[str]:
    """Generations with blocks skipped (a PruneComparison, full model first) and the per-block sweep (a
    BlockSweep; None when held-out scoring was off)."""
    if sweep is None:
        return _comparison_lines(prompt, comp) + [
            "### Which blocks matter",
            "",
            "Not measured: held-out scoring was off (`--no-eval`), and the block sweep "
            "ranks blocks by their held-out loss.",
            "",
        ]
    return _comparison_lines(prompt, comp) + _sweep_lines(sweep)


def lens_section(prompt: str, lens_prompt: str, lens, gen_lens) -> list[str]:
    """The logit lens of `lens_prompt` (a LensResult) and of a greedy generation from `prompt` (a
    GenerationLens)."""
    lines = [
        "## 5. The logit lens: where the prediction forms",
        "",
        "Row `embed` is the residual stream entering block 0 and row *i* the stream after block *i* (the "
        "last row is the model's output); each is decoded through the final LayerNorm, with its statistics "
        f"recomputed from that row, and the unembedding. Prompt {_prompt(lens_prompt)}.",
        "",
    ]
    kl = lens.kl_to_final.mean(axis=1)  # (rows,) nats, averaged over positions
    ent = lens.entropy.mean(axis=1)  # (rows,)
    lines += [
        *md_table(
            ["row", "mean entropy (nats)", "mean KL to final (nats)"],
            [[escape(lbl), float(e), float(k)] for lbl, e, k in zip(lens.row_labels, ent, kl)],
        ),
        "",
    ]
    lines += [
        f"Mean KL to the final distribution falls from {fmt(float(kl[0]), '.2f')} nats at the first row to "
        f"{fmt(float(kl[-2]), '.2f')} at the row before last; mean entropy goes from "
        f"{fmt(float(ent[0]), '.2f')} to {fmt(float(ent[-1]), '.2f')} nats.",
        "",
    ]
    lines += figure(
        "lens.png", "Logit lens: top-1 token per layer and position, coloured by its probability."
    )
    em = list(gen_lens.emergence)
    known = [e for e in em if e is not None]
    last = lens.n_rows - 1
    # Rows as the figures label them: embed, then the block each row comes out of (row r is block r - 1).
    found = (
        f"{len(known)} become top-1 at some row and stay there; on average they emerge after block "
        f"{fmt(sum(known) / len(known) - 1, '.1f')} (with `embed` counted as -1), and "
        f"{sum(1 for e in known if e == last)} appear only at the output row (after block {last - 1})."
        if known
        else "none is top-1 before the output."
    )
    lines += [
        f"Alongside greedy generation from {_prompt(prompt)}: the emergence layer of a token is the first "
        f"row from which it stays top-1. Of {len(em)} generated tokens, {found}",
        "",
    ]
    return (
        lines
        + figure(
            "lens_generation.png",
            "Probability of each generated token in every row; red boxes: the rows "
            "from which it stays top-1 (its emergence).",
        )
        + figure(
            "lens_skip_odd.png",
            "The same lens with the odd blocks skipped: skipped rows repeat the row before them.",
        )
    )


def reproduce_section(command: str, meta: dict, seed: int, sha256: str | None) -> list[str]:
    """The command line, the library versions (`model_meta(model)['versions']`), the seed and the weights'
    hash."""
    v = meta["versions"]
    return [
        "## 6. How to reproduce",
        "",
        *fence(command),
        "",
        f"probes {fmt(v.get('probes'))}, transformer-lens {fmt(v.get('transformer-lens'))}, transformers "
        f"{fmt(v.get('transformers'))}, torch {fmt(v.get('torch'))}; seed {seed}; weights sha256 "
        f"{fmt(sha256)}.",
        "",
    ]
