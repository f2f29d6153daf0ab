"""Build the report: run each study on the model, hand the results to the sections, write the folder.

    path = build_report(model, "study")                                   # REPORT_SAMPLING
    path = build_report(model, "study", max_new_tokens=20, num_samples=1)  # shortcuts into the config

`check_report_args` vets everything a user typed before a model loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from probes.core.sampling import REPORT_SAMPLING, SamplingConfig
from probes.errors import ProbesError
from probes.io import check_dir, check_links, save_figure, staged_folder, swap_folder, user_path, write_text
from probes.jsonread import read_json

# REPORT_SAMPLING (60 tokens, 2 samples per setting, SamplingConfig's seed) lives beside the other
# studies' defaults, where the CLI reads it for --help. The report takes only its counts and seed:
# temperature and top-k are the study's own (sections.STUDY_SETTINGS), and the pruning runs are
# greedy, one sample of max_new_tokens with this seed.

LENS_GENERATION_TOKENS = 30  # greedy tokens followed by the generation lens


MANIFEST = ".probes-report.json"  # in every report folder: exactly the files the report wrote


def check_report_dir(out, force: bool) -> Path:
    """An output folder that does not exist, is empty, or may be replaced (`force`).

    `force` replaces only a folder that is recognisably a report of ours: its manifest lists
    exactly the files in it. Anything else in it (notes, `src/`, `.git/`) and it is refused.
    """
    p = user_path(out)
    check_links(p, "out")  # before resolve(), which a loop makes raise
    p = p.resolve()
    if p.exists() and not p.is_dir():
        raise ProbesError(f"--out {str(p)!r} is a file; give a folder")
    protected = {Path.cwd().resolve(), Path.home().resolve(), Path(p.anchor)} | set(
        Path.cwd().resolve().parents
    )
    if p in protected:
        raise ProbesError(
            f"--out {str(p)!r} is the current folder, one of its parents or the home folder; give a new "
            "folder"
        )
    if p.is_dir() and any(p.iterdir()):
        if not force:
            raise ProbesError(
                f"--out {str(p)!r} exists and is not empty; pass --force to replace a previous report"
            )
        _check_ours(p)
    check_dir(p.parent)  # the report is built beside `out`, then moved into place
    return p


def _check_ours(p: Path) -> None:
    """Raise unless `p` holds exactly the files its manifest lists (a report this tool wrote)."""
    refuse = "refusing to replace it even with --force"
    if not (p / MANIFEST).is_file():
        raise ProbesError(
            f"--out {str(p)!r} is not a report folder written by probes (no {MANIFEST}); {refuse}"
        )
    manifest = read_json(p / MANIFEST, max_bytes=1 << 20)  # damaged: one line naming it
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ProbesError(f"{p / MANIFEST}: not a report manifest (no list of files); {refuse}")
    listed = set(files)
    present = {q.name for q in p.iterdir()}
    extra = sorted(present - listed - {MANIFEST})
    if extra or not all((p / name).is_file() for name in listed):
        what = (
            f"also holds {', '.join(repr(e) for e in extra[:3])}"
            if extra
            else "has changed since it was written"
        )
        raise ProbesError(f"--out {str(p)!r} {what}; {refuse}")


def report_config(config: SamplingConfig | None = None, **overrides) -> SamplingConfig:
    """The config the report samples with: REPORT_SAMPLING unless given, keyword shortcuts applied,
    checked."""
    return SamplingConfig.of(config if config is not None else REPORT_SAMPLING, **overrides)


def check_report_args(
    out,
    config: SamplingConfig | None = None,
    *,
    force: bool = False,
    eval_text=None,
    evaluate: bool = True,
    words: dict | None = None,
    **overrides,
) -> SamplingConfig:
    """Everything a user chose for `build_report`, checked before the model loads; returns the config to
    use. `words`: the embeddings section's `common`, `rare`, `words` and `token_form`, as `embeddings`
    takes them."""
    from probes.studies.embeddings.forms import check_token_form
    from probes.studies.embeddings.study import word_groups
    from probes.studies.settings import check_eval_path

    words = dict(words or {})
    if "token_form" in words:
        check_token_form(words.pop("token_form"))
    if set(words) - {"common", "rare", "words"}:
        raise ProbesError(f"words= takes common, rare, words and token_form; got {', '.join(sorted(words))}")
    word_groups(words.get("common"), words.get("rare"), words.get("words"))
    cfg = report_config(config, **overrides)
    check_report_dir(out, force)
    if not evaluate and eval_text is not None:
        raise ProbesError(
            "held-out scoring is off (evaluate=False), so eval_text=... would be ignored; drop one"
        )
    if isinstance(eval_text, (str, os.PathLike)):
        check_eval_path(eval_text)  # readable; whether it holds enough tokens needs the tokenizer
    return cfg


def build_report(
    model,
    out,
    *,
    prompt: str | None = None,
    lens_prompt: str | None = None,
    config: SamplingConfig | None = None,
    command: str = "probes report",
    force: bool = False,
    eval_text=None,
    evaluate: bool = True,
    words: dict | None = None,
    progress=None,
    **overrides,
) -> Path:
    """Run the whole study on `model` and write `out/report.md`, `out/index.html` and the figures; return
    report.md's path. index.html shows the lens and prune figures as their interactive views (each a
    `view_*.html` file in the folder, framed in place); report.md keeps the figures.

    `config` (REPORT_SAMPLING by default; its fields also as keywords) gives the tokens per sample,
    the samples per setting and the seed. Prompts and the held-out text (`eval_text`: a file, a
    `probes.Dataset`) default by model (`probes.studies.defaults`): Shakespeare for the bundled
    model, the classic study's prompts and a modern-English text for others; a given `prompt` is
    used for sampling and pruning alike. `evaluate=False` skips held-out scoring (and with it the
    block sweep); every other section stays. `words` chooses the embeddings section's words and token
    form (`{"token_form": "first", "rare": [...]}`: `embeddings`' `common`, `rare`, `words` and
    `token_form`). Everything is written into a temporary folder beside
    `out` and moved into place at the end, so an error or Ctrl-C leaves any previous report untouched.
    """
    cfg = check_report_args(
        out, config, force=force, eval_text=eval_text, evaluate=evaluate, words=words, **overrides
    )
    import probes
    from probes.core.generate import generate_runs
    from probes.core.info import model_info
    from probes.core.layers import parse_layers
    from probes.meta import model_meta
    from probes.progress import progress_of
    from probes.report import sections as sec
    from probes.report.markdown import figure_names, to_html
    from probes.studies.defaults import defaults_for_model, report_sweep_tokens
    from probes.studies.embeddings.study import embeddings
    from probes.studies.lens.generation import generation_lens
    from probes.studies.lens.logit import logit_lens
    from probes.studies.next_token import next_token_distribution
    from probes.studies.prune.compare import compare_pruned, sweep_blocks
    from probes.studies.prune.heldout import heldout_source
    from probes.studies.settings import prune_config
    from probes.views.lens import lens_frame
    from probes.views.prune import prune_frame

    p = progress_of(progress)
    say = p.note
    n_steps, done = 6 if evaluate else 5, iter(range(1, 7))  # the block sweep needs held-out scoring

    def step(what: str) -> None:
        say(f"[{next(done)}/{n_steps}] {what}")

    defaults = defaults_for_model(model)
    prune_prompt = prompt if prompt is not None else defaults.prune_prompt
    prompt = prompt if prompt is not None else defaults.prompt
    lens_prompt = lens_prompt if lens_prompt is not None else defaults.lens_prompt
    held = heldout_source(model, eval_text) if evaluate else None
    dest = check_report_dir(out, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []
    views: dict[str, tuple[str, str]] = {}  # figure -> (its interactive view's file, the frame that shows it)

    def save(name: str, fig) -> None:  # as soon as it is drawn, so no figure is held to the end
        save_figure(fig, tmp / name)
        saved.append(name)

    def save_view(figure: str, result, frame) -> None:  # the figure's interactive view, beside it
        name = "view_" + figure.removesuffix(".png") + ".html"
        result.to_html(tmp / name)
        views[figure] = (name, frame(name))

    place = lambda folder: swap_folder(folder, dest, force=force, check_ours=_check_ours, what="report")
    with staged_folder(dest, place) as tmp:
        step("model")
        info, meta = model_info(model), model_meta(model)
        card = Path(info["path"]) / "MODEL_CARD.md" if info.get("path") else None
        lines = sec.title_section(info) + sec.model_section(
            info, str(card) if card and card.is_file() else None
        )
        given = {
            "prompt": prompt != defaults.prompt,
            "prune": prune_prompt != defaults.prune_prompt,
            "lens": lens_prompt != defaults.lens_prompt,
            "eval": eval_text is not None,
        }
        lines += sec.inputs_section(
            prompt, prune_prompt, lens_prompt, held.name if held else None, defaults.why, given
        )

        step("sampling at four settings, with the pruning runs in the same batch")
        grid = sec.study_settings(cfg)
        dist = next_token_distribution(model, prompt, settings=grid, top=12, bos=cfg.bos)
        # Every setting's samples and the pruning runs' continuations (full model, then each skip
        # set) decode in one batch: one pass over the weights per token for all of them.
        prune_cfg = prune_config(max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        prune_runs = [[]] + [parse_layers(spec, model.cfg.n_layers) for spec in sec.PRUNE_SPECS]
        decoded = generate_runs(
            model, [(prompt, c, []) for c in grid] + [(prune_prompt, prune_cfg, r) for r in prune_runs]
        )
        samples, prune_samples = decoded[: len(grid)], decoded[len(grid) :]
        lines += sec.sampling_section(prompt, cfg, dist, samples)
        save("next_token.png", dist.figure())

        step("embeddings")
        emb = embeddings(model, **(words or {}))
        lines += sec.embeddings_section(emb.as_dict())
        save("embed_norms.png", emb.figure_norms())
        save("embed_cosine.png", emb.figure_cosine())
        save("embed_scatter.png", emb.figure_scatter())
        save("embed_pca.png", emb.figure_pca())

        # The sweep scores 18 runs on every token, so the report scores report_sweep_tokens of the text
        # (GPT-2: 512; the sections say how many): `probes prune` scores the whole text. The sweep
        # runs first; the comparison's runs (odd, even, last-half) are among its, and are reused.
        if held is not None:
            cap = report_sweep_tokens(model.cfg.n_ctx)
            held = replace(held, max_tokens_per_text=min(held.max_tokens_per_text or cap, cap))
        scored: dict = {}
        sweep = None
        if evaluate:
            step("block sweep")
            sweep = sweep_blocks(model, eval_text=held, progress=p, memo=scored)
            save("sweep.png", sweep.figure())
        step("pruning: full vs " + ", ".join(sec.PRUNE_SPECS))
        comp = compare_pruned(
            model,
            prune_prompt,
            sec.PRUNE_SPECS,
            prune_cfg,
            eval_text=held,
            evaluate=evaluate,
            progress=p,
            memo=scored,
            samples=prune_samples,
        )
        save("prune.png", comp.figure())
        save_view("prune.png", comp, lambda src: prune_frame(comp, src=src))
        lines += sec.prune_section(prune_prompt, comp, sweep)

        step("logit lens")
        lens = logit_lens(model, lens_prompt)
        gen_lens = generation_lens(
            model, prompt, max_new_tokens=LENS_GENERATION_TOKENS, greedy=True, seed=cfg.seed
        )
        with probes.skip(model, "odd"):
            lens_odd = logit_lens(model, lens_prompt)
        lines += sec.lens_section(prompt, lens_prompt, lens, gen_lens)
        save("lens.png", lens.figure(metric="prob"))
        save("lens_generation.png", gen_lens.figure())
        save("lens_skip_odd.png", lens_odd.figure(metric="prob"))
        save_view("lens.png", lens, lambda src: lens_frame(lens, src=src))
        save_view(
            "lens_generation.png",
            gen_lens,
            lambda src: lens_frame(gen_lens.lens, generation=gen_lens, src=src),
        )
        save_view("lens_skip_odd.png", lens_odd, lambda src: lens_frame(lens_odd, src=src))

        lines += sec.reproduce_section(command, meta, cfg.seed, info["sha256"])
        assert sorted(figure_names(lines)) == sorted(saved), (figure_names(lines), saved)  # shown == written
        text = "\n".join(lines) + "\n"
        write_text(tmp / "report.md", text)
        # The HTML shows each view in place of its figure; the Markdown keeps the figures.
        write_text(tmp / "index.html", to_html(text, views={f: frame for f, (_, frame) in views.items()}))
        files = saved + [name for name, _ in views.values()] + ["report.md", "index.html"]
        write_text(tmp / MANIFEST, json.dumps({"files": sorted(files)}, indent=1))
    return dest / "report.md"
