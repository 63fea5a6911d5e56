"""The report kit: tables (HTML and markdown), percentages, figures and page parts shared by the run
report, the study report, the data report and the cards. Pages are self-contained (inline CSS,
plots as base64 PNGs); every value from a file is escaped unless wrapped as ``Html``."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

CSS = """
body{font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2733;
 background:#f4f6f9;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:8px 0 2px}h2{font-size:19px;margin:0 0 10px;color:#14324f}
.sub{color:#5b6b7c;margin:0 0 18px}
.headline{font-size:19px;background:#fff;border-left:5px solid #2f6fad;padding:14px 18px;margin:0 0 18px;
 border-radius:4px}
section{background:#fff;border-radius:6px;padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px #0001}
table{border-collapse:collapse;margin:6px 0 10px;font-size:14px}
th,td{padding:4px 10px;text-align:right;border-bottom:1px solid #e3e8ee}
th:first-child,td:first-child{text-align:left}th{background:#eef2f6;font-weight:600}
tr:nth-child(even) td{background:#fafbfc}
.note{color:#6b7785;font-style:italic}
.good{color:#16733a;font-weight:600}.bad{color:#b3261e;font-weight:600}.flat{color:#5b6b7c}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
details pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px;max-height:480px}
code{background:#eef2f6;padding:0 3px;border-radius:3px}
.generated{background:#fff7e0;border-left:4px solid #c27c2c;padding:8px 12px}
.verdict{background:#fff;border-radius:6px;padding:12px 20px;margin:0 0 16px;box-shadow:0 1px 2px #0001}
.verdict dt{font-weight:600;margin-top:6px}.verdict dd{margin:2px 0 6px 0;font-size:16px}
"""

# Sets data attributes once images have loaded, so a headless browser (tests) can check they render.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-images-ok',
    String(imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length));
});
"""


class Html(str):
    """Markup built by the caller: a table cell that is not escaped."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pct(share: float | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage: 0.45 -> '45.0 %'."""
    return "–" if share is None else f"{100 * share:.{digits}f} %"


def points(x: float) -> str:
    """Percentage points already scaled (45.0 -> '45'): whole points when exact (n = 50 gives steps
    of 2), else one decimal."""
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "",
               fmt: Callable[[Any], str] = str) -> str:
    """Cells formatted by `fmt` and escaped, except ``Html`` cells."""
    def cell(v: Any) -> str:
        return v if isinstance(v, Html) else esc(fmt(v))
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> list[str]:
    """A GitHub markdown table as lines; columns named in `right` are right-aligned; `|` is escaped."""
    align = ["---:" if h in right else "---" for h in header]
    return (["| " + " | ".join(map(md_cell, header)) + " |", "|" + "|".join(align) + "|"]
            + ["| " + " | ".join(map(md_cell, r)) + " |" for r in rows])


def fig_b64(fig) -> str:
    """A matplotlib figure as a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def html_note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def html_section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'
