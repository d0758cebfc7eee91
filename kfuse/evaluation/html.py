"""Markdown and self-contained HTML rendering of a `Report` (no extra dependencies)."""

import base64
import html
import io
import math

import numpy as np

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table.kfuse { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
table.kfuse th, table.kfuse td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.kfuse th { background: #f3f3f3; }
table.kfuse td.best { font-weight: bold; background: #e8f4e8; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
.note { color: #555; font-size: 0.9em; } .na { color: #a55; }
"""

#: marks <body data-images-loaded="loaded/total"> once the page has loaded, so a headless
#: browser's DOM dump shows whether every embedded figure decoded
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + images.length);
});
"""


def format_value(value):
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4f}"
    return str(value)


def _index_name(table):
    names = [n for n in table.index.names if n]
    return " / ".join(names) if names else ""


def _index_text(key):
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def markdown_table(table):
    """A pipe table from a DataFrame (index as the first column)."""
    header = [_index_name(table)] + [str(c) for c in table.columns]
    aligns = ["---:" if table[c].dtype.kind in "biuf" else "---" for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", *aligns]) + "|"]
    for key, row in table.iterrows():
        cells = [_index_text(key)] + [format_value(v) for v in row.tolist()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def html_table(table, best=None):
    """An HTML table; `best` maps a column to "max" / "min" to highlight the best cell."""
    best = best or {}
    marks = {}
    for column, how in best.items():
        if column in table and len(table) > 1:
            values = table[column].astype(float)
            if values.notna().any():
                marks[column] = values.idxmax() if how == "max" else values.idxmin()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [_index_name(table), *table.columns])
    rows = []
    for key, row in table.iterrows():
        cells = [f"<th>{html.escape(_index_text(key))}</th>"]
        for column, value in zip(table.columns, row.tolist(), strict=False):
            cls = ' class="best"' if marks.get(column) == key else ""
            cells.append(f"<td{cls}>{html.escape(format_value(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table_html = f'<table class="kfuse"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table_html}</div>'


def figure_png(figure, dpi=100):
    """A matplotlib Figure as base64-encoded PNG text."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(name, figure, caption):
    data = figure_png(figure)
    return (
        f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def page(title, sections):
    """A whole HTML document; `sections` is a list of (heading, html body) pairs."""
    body = "\n".join(
        f'<section><h2>{html.escape(heading)}</h2>\n{content}</section>' for heading, content in sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script>{CHECK_SCRIPT}</script></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def paragraph(text, cls="note"):
    return f'<p class="{cls}">{html.escape(text)}</p>'


def bullet_list(items):
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"
