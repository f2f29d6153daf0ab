"""The study report: sampling, embeddings, pruning and the logit lens of one model, as Markdown and HTML with
figures.

build.py      build_report: runs the studies, writes the folder (check_report_dir, check_report_args first)
sections.py   one pure function per section: result objects -> Markdown lines
markdown.py   tables, quotes, tokens (via probes.tokens.show_token), numbers, and to_html (markdown-it-py)
"""

from __future__ import annotations

from probes.report.build import (
    REPORT_SAMPLING,
    build_report,
    check_report_args,
    check_report_dir,
    report_config,
)

__all__ = ["REPORT_SAMPLING", "build_report", "check_report_dir", "check_report_args", "report_config"]
