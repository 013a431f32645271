"""Rendering results into figures and one self-contained HTML page.

Reports are built only from files that experiments wrote (JSON, CSV, PNG); nothing here trains
or probes a model.
"""

from attractor.report.html import (
    figure,
    heading,
    paragraph,
    preformatted,
    raw,
    render_page,
    table,
    write_page,
)

__all__ = [
    "figure",
    "heading",
    "paragraph",
    "preformatted",
    "raw",
    "render_page",
    "table",
    "write_page",
]
