"""Screenshots of the interactive views for the README (docs/view_*.png), on the bundled model.

python scripts/view_screenshots.py     # needs playwright and Debian's chromium
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import probes

DOCS = Path(__file__).resolve().parent.parent / "docs"
HELDOUT = Path(probes.__file__).parent / "assets" / "shakespeare-gpt2" / "heldout.txt"


def pages(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, view file, a selector to hover before the shot), written into `folder`."""
    model = probes.load()
    prompt = "ROMEO: But soft, what light through yonder window breaks? It is the east"
    lens = probes.logit_lens(model, prompt, compare_skip="odd")
    tuned = probes.logit_lens(model, prompt, compare_skip="odd", lens="bundled")
    gen = probes.generation_lens(model, "ROMEO:", max_new_tokens=30, greedy=True)
    texts = [t for t in HELDOUT.read_text(encoding="utf-8").split("\n\n") if t.strip()][:40]
    logit, through = probes.lens_over(model, texts, lens=[None, "bundled"], compare_skip="odd")
    comp = probes.compare_pruned(model, "ROMEO:", ["odd", "last-half"], max_new_tokens=30, evaluate=False)
    return [
        ("lens", lens.to_html(folder / "lens.html", others=[tuned]), '.cell[data-r="4"][data-j="9"]'),
        ("generation", gen.to_html(folder / "gen.html"), '.cell[data-r="5"][data-j="6"]'),
        ("dataset", logit.to_html(folder / "dataset.html", others=[through]), '.hit[data-r="2"]'),
        ("prune", comp.to_html(folder / "prune.html"), '.cell[data-run="1"][data-t="3"]'),
    ]


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    try:
        shots = pages(folder)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--headless"])
            for name, path, hover in shots:
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                page.goto(path.as_uri())
                page.wait_for_selector("html[data-ready]")
                page.hover(hover)
                page.screenshot(path=str(DOCS / f"view_{name}.png"))
                page.close()
            browser.close()
    finally:
        shutil.rmtree(folder)
    print(f"wrote {', '.join(f'view_{n}.png' for n, *_ in shots)} to {DOCS}")


if __name__ == "__main__":
    main()
