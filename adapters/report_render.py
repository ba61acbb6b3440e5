"""Draw the quality report: matplotlib's Agg canvas (no display, no pyplot state) for the PNG, a
self-contained HTML page around it.

One panel per task: the live scores over time, the regimes the change-point test found (dashed means), and
every change as a vertical line coloured by kind — the culprit thick and labelled. The HTML page inlines the
PNG as base64 and lists each task's verdict and changes, so it opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from projections.report_panels import Panel

COLOURS = {"edit": "#d62728", "delta": "#2ca02c", "revert": "#17becf", "config": "#7f7f7f", "model": "#9467bd",
           "backend": "#8c564b", "data": "#ff7f0e", "judge": "#e377c2"}
MAX_LABEL = 60


class MatplotlibReport:
    """`handlers.report.Renderer` with matplotlib."""

    def png(self, panels: Sequence[Panel], path: Path, title: str) -> None:
        rows = max(1, len(panels))
        fig = Figure(figsize=(11, 2.6 * rows + 0.8))
        axes = fig.subplots(rows, 1, squeeze=False)
        for ax, p in zip(axes[:, 0], panels, strict=False):
            _panel(ax, p)
        if not panels:
            axes[0, 0].text(0.5, 0.5, "no scored tasks yet", ha="center", va="center")
            axes[0, 0].set_axis_off()
        kinds = sorted({m.kind for p in panels for m in p.markers})
        if kinds:
            fig.legend([Line2D([0], [0], color=COLOURS.get(k, "black")) for k in kinds], kinds,
                       loc="upper right", ncol=min(len(kinds), 8), fontsize=8, frameon=False)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, format="png")

    def html(self, panels: Sequence[Panel], png: Path, path: Path, title: str) -> None:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                 "<style>body{font-family:sans-serif;margin:1.5em;max-width:1200px}"
                 "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px;"
                 "text-align:left}.verdict{background:#f6f6f6;padding:0.5em;border-left:4px solid #d62728}</style>",
                 f"</head><body><h1>{html.escape(title)}</h1>",
                 f"<img alt='quality over time per task' style='max-width:100%' src='data:image/png;base64,{data}'>"]
        for p in panels:
            parts.append(f"<h2>{html.escape(p.task)}</h2><p class='verdict'>{html.escape(p.verdict)}"
                         + (f" <small>(audit {html.escape(p.audit)})</small>" if p.audit else "") + "</p>")
            if p.changes:
                parts.append("<table><tr><th>#</th><th>recorded</th><th>kind</th><th>by</th><th>what</th></tr>")
                parts += [f"<tr><td>{c['position']}</td><td>{html.escape(c['at'][:19])}</td><td>{c['kind']}</td>"
                          f"<td>{html.escape(c['by'])}</td><td>{html.escape(c['summary'])}</td></tr>" for c in p.changes]
                parts.append("</table>")
        parts.append("</body></html>\n")
        path.write_text("".join(parts), encoding="utf-8")


def _panel(ax: Axes, p: Panel) -> None:
    if p.points:
        xs, ys = zip(*p.points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, color="#1f77b4")
    for r in p.regimes:
        ax.hlines(r.mean, mdates.date2num(r.start), mdates.date2num(r.end), colors="#1f77b4", linestyles="dashed",
                  linewidth=1.5, alpha=0.7)
    for m in p.markers:
        ax.axvline(float(mdates.date2num(m.at)), color=COLOURS.get(m.kind, "black"), linewidth=2.5 if m.culprit else 0.8,
                   alpha=0.9 if m.culprit else 0.5)
        if m.culprit:
            ax.annotate(m.label[:MAX_LABEL], (mdates.date2num(m.at), 5.2), fontsize=7, color=COLOURS.get(m.kind, "black"),
                        ha="left", va="top", annotation_clip=False)
    ax.set_ylim(0.8, 5.4)
    ax.set_ylabel("score")
    ax.set_title(f"{p.task} — {p.verdict[:140]}", fontsize=8, loc="left")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
