"""A self-contained HTML page: figures embedded as data URIs, no external reference at all.

A page is a list of blocks, each an HTML string produced by the helpers below. Text is always
escaped; only :func:`raw` passes markup through (for block types a caller builds itself).

Example::

    blocks = [heading("Capacity"), paragraph("PL vs Hebb."), figure("fig.png", "Basin radius")]
    write_page("report.html", "Binary associative memory", blocks)
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #333; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .88rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: .82rem; }
.tok-ok { background: #c8f0c8; } .tok-bad { background: #f6c6c6; } .tok-same { color: #333; }
.note { color: #555; font-size: .9rem; }
"""


def heading(text: str, level: int = 2) -> str:
    """``<h{level}>`` with escaped text."""
    assert 1 <= level <= 4
    return f"<h{level}>{html.escape(text)}</h{level}>"


def paragraph(text: str, css_class: str | None = None) -> str:
    """A paragraph of escaped text."""
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def preformatted(text: str) -> str:
    """Escaped monospace text (JSON, commands)."""
    return f"<pre>{html.escape(text)}</pre>"


def raw(markup: str) -> str:
    """Markup passed through unchanged; the caller is responsible for escaping."""
    return markup


def _format_cell(value: object, digits: int) -> tuple[str, bool]:
    if value is None:                   # undefined (e.g. a correlation of constant values)
        return "–", False
    if isinstance(value, bool):
        return html.escape(str(value)), True
    if isinstance(value, float):
        if math.isnan(value):
            return "–", False
        return f"{value:.{digits}g}", False
    if isinstance(value, int):
        return str(value), False
    return html.escape(str(value)), True


def table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str] | None = None,
    digits: int = 4,
) -> str:
    """An HTML table of dict rows; floats shown with ``digits`` significant digits."""
    if not rows:
        return paragraph("(no rows)", "note")
    columns = list(columns) if columns is not None else list(rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            text, is_text = _format_cell(row.get(c), digits)
            cells.append(f'<td class="text">{text}</td>' if is_text else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(png: str | os.PathLike | bytes, caption: str = "") -> str:
    """A PNG (path or bytes) embedded as a base64 data URI, with a caption."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    encoded = base64.b64encode(data).decode("ascii")
    alt = html.escape(caption or "figure")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}"/>{cap}</figure>'


def render_page(title: str, blocks: Iterable[str]) -> str:
    """The whole page as one string."""
    body = "\n".join(blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{heading(title, 1)}\n{body}\n</body></html>\n"
    )


def write_page(path: str | os.PathLike, title: str, blocks: Iterable[str]) -> Path:
    """Render and write atomically (a partial file never replaces a good one)."""
    from attractor.io import write_text

    return write_text(path, render_page(title, blocks))
