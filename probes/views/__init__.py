"""Interactive views: a result drawn as one self-contained HTML file (inline JS and CSS, no network).

page.py   the document: data embedded as JSON, the package's JS and CSS inlined; the notebook frame
lens.py   the lens view's data (prompt and generation lens), thinned to a size bound
lens.js   the lens explorer (hand-written, no build step); view.css its styles
"""
