"""What every command does around the library: check the model and layer specs before loading, then load."""

from __future__ import annotations

from probes.cli.output import log
from probes.errors import ProbesError


class Target:
    """The model a command will run on, checked without loading its weights.

    Reads the checkpoint's config.json, so layer specs fit the model and a bad --model, --device or
    --dtype fails in a second rather than after a 10-20 s load; `prompts` (text or FILE:path) are
    read now too, so a missing file or non-UTF-8 text fails before loading as well.
    """

    def __init__(
        self,
        model: str | None,
        device: str | None,
        dtype: str | None,
        *prompts: str,
        bos: bool = True,
        threads: int | None = None,
        ranks: bool = False,
    ):
        from probes.core.load import check_dtype, checkpoint_config, parse_device
        from probes.core.prompt import read_prompt

        for prompt in prompts:
            if read_prompt(prompt) == "" and not bos:
                raise ProbesError("the prompt is empty; give some text, or keep the BOS token (--bos)")
        from probes.core import distributed

        if distributed.launched() and not ranks:
            raise ProbesError(
                "this command runs in one process: under torchrun, capture --dataset, lens --dataset, prune "
                "and tuned-lens train split their work between ranks; run the rest without torchrun"
            )
        check_dtype(dtype)
        if device is not None:
            parse_device(device)
        if threads is not None and threads < 1:
            raise ProbesError(f"--threads {threads}: give a number of threads >= 1")
        self.model, self.device, self.dtype, self.threads = model, device, dtype, threads
        from probes.core.checkpoint import config_sizes

        sizes = config_sizes(checkpoint_config(model))
        self.n_layers, self.n_ctx = sizes["n_layers"], sizes["n_ctx"]

    def layers(self, spec) -> list[int]:
        from probes.core.layers import parse_layers

        return parse_layers(spec, self.n_layers)

    def hooks(self, names) -> list[str]:
        """The hook names `--hooks` gives, checked against this model (its block count from config.json)."""
        from probes.core.hooks import check_hook_names

        return check_hook_names(names, self.n_layers)

    def windows(self, *, bos: bool = True, score: bool = True) -> None:
        """Refuse now a context too small to cut texts into windows (`score`: to score them)."""
        from probes.core.dataset import check_context

        check_context(self.n_ctx, bos=bos, score=score)

    def skipped(self, skip=None, keep=None) -> list[int]:
        """The blocks `--skip` or `--keep` names, checked against this model."""
        from probes.core.skip import skip_spec

        return skip_spec(skip, keep, self.n_layers)

    def load(self):
        import probes

        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        log(f"loading {self.model or 'the bundled model'} ...")
        return probes.load(self.model, device=self.device, dtype=self.dtype)


def other_rank() -> bool:
    """Whether this process is a torchrun rank other than 0: it computed its share, and rank 0 writes the
    output."""
    from probes.core import distributed

    return not distributed.is_main()


def eval_choice(
    eval_text=None,
    dataset=None,
    *,
    max_texts=None,
    split=None,
    streaming: bool = False,
    evaluate: bool = True,
):
    """(evaluate, eval_text) as `compare_pruned` and `sweep_blocks` take them, from the flags a user gave.

    Checked without a model or torch. eval_text is None (the model's default text), a file path
    (`--eval-text`), or a checked `probes.Dataset` (`--dataset`, with `--max-texts` and `--split`).
    """
    from probes.core.dataset import Dataset
    from probes.errors import ProbesError
    from probes.studies.settings import check_eval_path

    given = [
        name
        for name, v in (
            ("--eval-text", eval_text),
            ("--dataset", dataset),
            ("--max-texts", max_texts),
            ("--split", split),
            ("--streaming", streaming or None),
        )
        if v is not None
    ]
    if not evaluate:
        if given:
            raise ProbesError(
                f"--no-eval turns held-out scoring off; {', '.join(given)} would be ignored (drop one)"
            )
        return False, None
    if dataset is None:
        if max_texts is not None or split is not None or streaming:
            raise ProbesError(
                "--max-texts, --split and --streaming choose texts of a --dataset; give --dataset FILE"
            )
        check_eval_path(eval_text)
        return True, eval_text
    if eval_text is not None:
        raise ProbesError("give either --eval-text (one held-out file) or --dataset (many texts), not both")
    data = Dataset(dataset, split=split or "lines", max_texts=max_texts, streaming=streaming)
    data.check()
    return True, data
