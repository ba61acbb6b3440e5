"""Drawing the data-flow graph: an indented text listing, Graphviz DOT, Mermaid and a PNG.

Every format shows the same two things a person looks for: how good each task is (score colour, red → green,
grey when unscored) and where the pipeline leaks (interface findings drawn as red edges). The PNG uses a
layered layout (topological generations of the graph's condensation, so cycles share a layer) rather than a
force layout, so producers sit left of their consumers in every drawing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from projections.dataflow import ARTIFACT, DataflowGraph, FindingSpec, check, mismatched, task_node
from projections.findings import finding_summary

RED = "#d62728"
GREY = "#bdbdbd"
EDGE = "#7f7f7f"
ARTIFACT_FILL = "#dbe9f6"
ORPHAN_FILL = "#fde0c5"
_STOPS = ((1.0, (0xD7, 0x30, 0x27)), (3.0, (0xFE, 0xE0, 0x8B)), (5.0, (0x1A, 0x98, 0x50)))


def score_colour(score: float | None) -> str:
    """Red (1) through yellow (3) to green (5); grey when a task has no score yet."""
    if score is None:
        return GREY
    s = min(5.0, max(1.0, score))
    (x0, c0), (x1, c1) = (_STOPS[0], _STOPS[1]) if s <= 3.0 else (_STOPS[1], _STOPS[2])
    t = (s - x0) / (x1 - x0)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1, strict=True))


class _View:
    """The nodes to draw (all, or one task's neighbourhood) and which edges are red."""

    def __init__(self, graph: DataflowGraph, task: str | None, findings: Iterable[FindingSpec] | None) -> None:
        self.graph = graph
        self.findings = list(check(graph) if findings is None else findings)
        nodes = graph.neighbourhood(task) if task else set(graph.g)
        self.g: nx.DiGraph = graph.g.subgraph(nodes)
        pairs, dead = mismatched(self.findings)
        self.red: set[tuple[str, str]] = set()
        self.dead: set[tuple[str, str]] = set()
        for p, c in pairs:
            pn, cn = task_node(p), task_node(c)
            for a in graph.g.successors(pn) if pn in graph.g else ():
                if graph.g.has_edge(a, cn):
                    self.red.update({(pn, a), (a, cn)})
        for t, pattern in dead:
            self.dead.add((task_node(t), ARTIFACT + pattern))
        self.flagged = {t for f in self.findings if f.severity != "info" for t in f.tasks}

    def is_red(self, u: str, v: str) -> bool:
        return (u, v) in self.red or (u, v) in self.dead

    def order(self) -> list[str]:
        """Nodes left to right: topological generations of the condensation, names sorted within one."""
        cond = nx.condensation(self.g)
        out: list[str] = []
        for gen in nx.topological_generations(cond):
            out.extend(sorted(n for c in gen for n in cond.nodes[c]["members"]))
        return out

    def layers(self) -> dict[str, int]:
        """Longest-path layers of the graph with back edges removed, so a cycle still reads left to right."""
        dag = nx.DiGraph(self.g)
        while True:
            try:
                cycle = nx.find_cycle(dag)
            except nx.NetworkXNoCycle:
                break
            dag.remove_edge(*cycle[-1][:2])
        layer: dict[str, int] = {}
        for n in nx.topological_sort(dag):
            layer[n] = max((layer[p] + 1 for p in dag.predecessors(n)), default=0)
        return layer

    def layered(self) -> nx.DiGraph:
        """A copy with a `layer` attribute, nodes inserted in barycentre order to cut edge crossings.

        Three sweeps (left to right, right to left, left to right), each ordering a layer by the mean rank
        of its neighbours in the layer before it: the usual Sugiyama heuristic, good enough for vaults.
        """
        layer = self.layers()
        count = max(layer.values(), default=-1) + 1
        members = [sorted(n for n in layer if layer[n] == i) for i in range(count)]
        rank = {n: float(k) for row in members for k, n in enumerate(row)}
        sweeps = [(range(1, count), self.g.predecessors), (range(count - 2, -1, -1), self.g.successors),
                  (range(1, count), self.g.predecessors)]
        for rows, neighbours in sweeps:
            for i in rows:
                def centre(n: str, nb=neighbours) -> tuple[float, float]:
                    near = [rank[m] for m in nb(n) if m in rank]
                    return (sum(near) / len(near) if near else rank[n], rank[n])
                members[i].sort(key=centre)
                rank.update({n: float(k) for k, n in enumerate(members[i])})
        out = nx.DiGraph()
        out.add_nodes_from((n, {**self.g.nodes[n], "layer": layer[n]}) for row in members for n in row)
        out.add_edges_from(self.g.edges)
        return out

    def label(self, node: str) -> str:
        attrs = self.g.nodes[node]
        if attrs["kind"] == "artifact":
            return str(attrs["pattern"])
        score = self.graph.stats(attrs["name"]).score
        return f"{attrs['name']}\n{score:.1f}" if score is not None else f"{attrs['name']}\n–"

    def edge_label(self, u: str, v: str) -> str:
        if self.g.nodes[u]["kind"] != "task":
            return ""
        es = self.graph.edge_stats(self.g.nodes[u]["name"], self.g.nodes[v]["pattern"]).summary()
        if "words" in es:
            return f"{es['words']['last']} words"
        return "never written" if es["missed"] else ""


def to_text(graph: DataflowGraph, task: str | None = None, findings: Iterable[FindingSpec] | None = None) -> str:
    """An indented listing in pipeline order: each task, what it writes, who reads it, and what is wrong."""
    view = _View(graph, task, findings)
    by_pair = {(f.tasks[0], f.tasks[1]): f for f in view.findings if f.kind == "too_small_for_consumer"}
    by_task: dict[str, list[FindingSpec]] = {}
    for f in view.findings:
        if f.kind not in ("too_small_for_consumer", "unread_output"):
            for t in f.tasks:
                by_task.setdefault(t, []).append(f)
    lines: list[str] = []
    for node in view.order():
        attrs = view.g.nodes[node]
        if attrs["kind"] != "task":
            continue
        name = attrs["name"]
        st = graph.stats(name)
        score = f"{st.score:.2f}" if st.score is not None else "–"
        mark = "✗ " if name in view.flagged else "  "
        lines.append(f"{mark}{name}  score {score}  runs {st.runs}" + (f"  [{', '.join(st.signatures)}]" if st.signatures else ""))
        for f in by_task.get(name, []):
            lines.append(f"      ! {f.kind}: {_brief(f)}")
        for a in sorted(view.g.predecessors(node)):
            if not view.g.nodes[a]["produced"]:
                lines.append(f"    reads {view.g.nodes[a]['pattern']}  (no producer)")
        for a in sorted(view.g.successors(node)):
            pattern = view.g.nodes[a]["pattern"]
            summary = graph.edge_stats(name, pattern).summary()
            size = ""
            if "words" in summary:
                w = summary["words"]
                size = f"  words last {w['last']} mean {w['mean']} min {w['min']}"
            lines.append(f"    writes {pattern}{size}" + ("  ✗ never written" if (node, a) in view.dead else ""))
            for c in sorted(view.g.successors(a)):
                consumer = view.g.nodes[c]["name"]
                pair = by_pair.get((name, consumer))
                lines.append(f"      -> {consumer}" + (f"  ✗ {_brief(pair)}" if pair else ""))
    return "\n".join(lines) + "\n"


def _brief(f: FindingSpec) -> str:
    prefix = "too small: " if f.kind == "too_small_for_consumer" else ""
    return prefix + finding_summary(f.kind, f.subject, f.evidence)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: DataflowGraph, task: str | None = None, findings: Iterable[FindingSpec] | None = None) -> str:
    """Graphviz DOT: tasks as score-coloured boxes, artifacts as notes, mismatched edges red."""
    view = _View(graph, task, findings)
    out = ["digraph dataflow {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];',
           '  edge [fontname="Helvetica", fontsize=9];']
    for node in view.order():
        attrs = view.g.nodes[node]
        if attrs["kind"] == "task":
            colour = score_colour(graph.stats(attrs["name"]).score)
            out.append(f'  {_q(node)} [label={_q(view.label(node))}, shape=box, style="rounded,filled", fillcolor="{colour}"];')
        else:
            fill = ARTIFACT_FILL if attrs["produced"] else ORPHAN_FILL
            out.append(f'  {_q(node)} [label={_q(view.label(node))}, shape=note, style=filled, fillcolor="{fill}"];')
    for u, v in sorted(view.g.edges):
        style = [f"label={_q(lbl)}"] if (lbl := view.edge_label(u, v)) else []
        if view.is_red(u, v):
            style += [f'color="{RED}"', "penwidth=2.5"] + (["style=dashed"] if (u, v) in view.dead else [])
        out.append(f"  {_q(u)} -> {_q(v)}" + (f" [{', '.join(style)}]" if style else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def _mq(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def to_mermaid(graph: DataflowGraph, task: str | None = None, findings: Iterable[FindingSpec] | None = None) -> str:
    """Mermaid flowchart: score fills via `style`, mismatched edges red via `linkStyle`."""
    view = _View(graph, task, findings)
    ids = {node: f"n{i}" for i, node in enumerate(view.order())}
    out = ["flowchart LR"]
    styles = []
    for node, nid in ids.items():
        attrs = view.g.nodes[node]
        if attrs["kind"] == "task":
            out.append(f"  {nid}[{_mq(view.label(node))}]")
            styles.append(f"  style {nid} fill:{score_colour(graph.stats(attrs['name']).score)},stroke:#333")
        else:
            out.append(f"  {nid}[/{_mq(view.label(node))}/]")
            styles.append(f"  style {nid} fill:{ARTIFACT_FILL if attrs['produced'] else ORPHAN_FILL},stroke:#777")
    red = []
    for i, (u, v) in enumerate(sorted(view.g.edges, key=lambda e: (ids[e[0]], ids[e[1]]))):
        lbl = view.edge_label(u, v)
        arrow = f" -->|{_mq(lbl)}| " if lbl else " --> "
        out.append(f"  {ids[u]}{arrow}{ids[v]}")
        if view.is_red(u, v):
            red.append(str(i))
    out.extend(styles)
    if red:
        out.append(f"  linkStyle {','.join(red)} stroke:{RED},stroke-width:3px")
    return "\n".join(out) + "\n"


def to_png(graph: DataflowGraph, path: str | Path, task: str | None = None,
           findings: Iterable[FindingSpec] | None = None) -> Path:
    """A layered drawing: tasks coloured by rolling score, artifacts as small squares, mismatches red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.lines import Line2D

    view = _View(graph, task, findings)
    g = view.layered()
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical") if g else {}
    per_layer: dict[int, int] = {}
    for n in g:
        per_layer[g.nodes[n]["layer"]] = per_layer.get(g.nodes[n]["layer"], 0) + 1
    width = max(7.0, 2.3 * (len(per_layer) or 1))
    height = max(5.0, 1.1 * max(per_layer.values(), default=1))
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    boxes = {}
    for n, (x, y) in pos.items():
        attrs = g.nodes[n]
        if attrs["kind"] == "task":
            fill = score_colour(graph.stats(attrs["name"]).score)
            box = {"boxstyle": "round,pad=0.5", "facecolor": fill, "edgecolor": RED if attrs["name"] in view.flagged else "#333",
                   "linewidth": 2.0 if attrs["name"] in view.flagged else 1.0}
            boxes[n] = ax.text(x, y, view.label(n), ha="center", va="center", fontsize=8.5, fontweight="bold", bbox=box, zorder=3)
        else:
            fill = ARTIFACT_FILL if attrs["produced"] else ORPHAN_FILL
            box = {"boxstyle": "square,pad=0.35", "facecolor": fill, "edgecolor": "#777", "linewidth": 0.8}
            boxes[n] = ax.text(x, y, textwrap.fill(view.label(n), 22), ha="center", va="center", fontsize=7,
                               color="#1f3b57", bbox=box, zorder=3)
    # arrows clip to the boxes' outlines: drawing them after the boxes (zorder 4 > 3) keeps the outlines current
    for u, v in g.edges:
        red = view.is_red(u, v)
        backwards = pos[v][0] <= pos[u][0]
        ax.annotate("", xy=pos[v], xytext=pos[u], zorder=4, arrowprops={
            "arrowstyle": "-|>", "color": RED if red else EDGE, "lw": 2.6 if red else 1.1,
            "linestyle": "--" if (u, v) in view.dead else "-", "shrinkA": 2, "shrinkB": 2,
            "patchA": boxes[u].get_bbox_patch(), "patchB": boxes[v].get_bbox_patch(),
            "connectionstyle": f"arc3,rad={0.35 if backwards else 0.0}"})
        if lbl := view.edge_label(u, v):
            (x0, y0), (x1, y1) = pos[u], pos[v]
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.03, lbl, ha="center", va="bottom", fontsize=6.5,
                    color=RED if red else "#444", zorder=4)
    cmap = LinearSegmentedColormap.from_list("score", [score_colour(1.0), score_colour(3.0), score_colour(5.0)])
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=Normalize(1, 5))
    fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="rolling score")
    ax.legend(handles=[Line2D([], [], color=RED, lw=3, label="mismatch / never written (dashed)"),
                       Line2D([], [], marker="s", ls="", color=GREY, markeredgecolor="#333", markersize=10, label="task, no score yet"),
                       Line2D([], [], marker="s", ls="", color=ARTIFACT_FILL, markeredgecolor="#555", markersize=9, label="artifact"),
                       Line2D([], [], marker="s", ls="", color=ORPHAN_FILL, markeredgecolor="#555", markersize=9, label="input nothing produces")],
              loc="lower left", fontsize=7, frameon=False)
    ax.set_title("autovault data flow" + (f" — {task}" if task else ""), fontsize=11)
    ax.axis("off")
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.25, max(xs) + 0.25)
    ax.set_ylim(min(ys) - 0.35, max(ys) + 0.25)
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
