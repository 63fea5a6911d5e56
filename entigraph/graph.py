"""The entity graph: nodes are entities, edges join entities that share a passage.

Edges are built passage by passage from that passage's entity set, so the cost is the sum of
(entities per passage)², never all pairs of the corpus. Each edge keeps its true weight (shared
passages) and up to ``max_provenance`` passage ids as provenance.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import networkx as nx

from .errors import InputError
from .io import atomic_path
from .records import Entity, Passage

# list-valued attributes: JSON strings in GraphML (scalars only), lists in memory and in JSON
LIST_ATTRS = ("aliases", "mentions", "passages", "docs")


def passage_entities(entities: Iterable[Entity], passages: list[Passage]) -> dict[str, set[str]]:
    """passage_id -> entity ids mentioned in it. Windows overlap, so a mention can be in two."""
    by_doc: dict[str, list[Passage]] = defaultdict(list)
    for p in passages:
        by_doc[p.doc_id].append(p)
    starts = {d: [p.start for p in ps] for d, ps in by_doc.items()}
    out: dict[str, set[str]] = defaultdict(set)
    for e in entities:
        for m in e.mentions:
            ps = by_doc.get(m.doc_id, [])
            i = bisect.bisect_right(starts.get(m.doc_id, []), m.start) - 1
            for j in range(i, max(-1, i - 3), -1):  # windows overlap only their neighbours
                if ps[j].start <= m.start and m.end <= ps[j].end:
                    out[ps[j].passage_id].add(e.entity_id)
    return out


def build_graph(entities: list[Entity], passages: list[Passage], max_provenance: int = 20,
                salience: dict[str, float] | None = None) -> nx.Graph:
    g = nx.Graph()
    for e in entities:
        g.add_node(e.entity_id, name=e.name, label=e.label, aliases=list(e.aliases),
                   doc_freq=e.doc_freq, count=e.count,
                   mentions=[[m.doc_id, m.start, m.end] for m in e.mentions],
                   salience=float((salience or {}).get(e.entity_id, 0.0)))
    weight: dict[tuple[str, str], int] = defaultdict(int)
    prov: dict[tuple[str, str], list[str]] = defaultdict(list)
    docs: dict[tuple[str, str], set[str]] = defaultdict(set)
    sets = passage_entities(entities, passages)
    for p in passages:
        ids = sorted(sets.get(p.passage_id, ()))
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                weight[a, b] += 1
                docs[a, b].add(p.doc_id)
                if len(prov[a, b]) < max_provenance:
                    prov[a, b].append(p.passage_id)
    for (a, b), w in weight.items():
        g.add_edge(a, b, weight=w, passages=prov[a, b], docs=sorted(docs[a, b]))
    return g


def _scalar_copy(g: nx.Graph) -> nx.Graph:
    h = g.copy()
    for _, data in list(h.nodes(data=True)) + [(None, d) for *_, d in h.edges(data=True)]:
        for k in LIST_ATTRS:
            if k in data:
                data[k] = json.dumps(data[k], ensure_ascii=False)
    return h


def write_graph(g: nx.Graph, graphml: Path, json_path: Path) -> None:
    """GraphML (list attributes as JSON strings) and node-link JSON (lists as lists)."""
    with atomic_path(graphml) as tmp:
        nx.write_graphml(_scalar_copy(g), tmp)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(nx.node_link_data(g, edges="edges"), ensure_ascii=False), encoding="utf-8")


def load_graph(path: str | Path) -> nx.Graph:
    """Read graph.graphml or graph.json (or a run's extract/ folder); list attributes come back as lists."""
    path = Path(path)
    if path.is_dir():
        path = path / "graph.graphml"
    if not path.is_file():
        raise InputError(f"graph file not found: {path}")
    if path.suffix == ".json":
        return nx.node_link_graph(json.loads(path.read_text(encoding="utf-8")), edges="edges")
    g = nx.read_graphml(path)
    for _, data in list(g.nodes(data=True)) + [(None, d) for *_, d in g.edges(data=True)]:
        for k in LIST_ATTRS:
            if isinstance(data.get(k), str):
                data[k] = json.loads(data[k])
    return g


def draw_top(g: nx.Graph, path: Path, top: int = 30, title: str = "") -> None:
    """PNG of the `top` nodes by weighted degree, for the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = sorted(g.nodes, key=lambda n: (-g.degree(n, weight="weight"), n))[:top]
    sub = g.subgraph(nodes)
    fig, ax = plt.subplots(figsize=(13, 9), dpi=110)
    ax.set_axis_off()
    ax.set_title(title or f"Entity graph: top {len(nodes)} of {g.number_of_nodes()} entities "
                 f"by weighted degree ({g.number_of_edges()} edges in all)", fontsize=12)
    if not nodes:
        ax.text(0.5, 0.5, "no entities", ha="center", va="center", fontsize=16)
    else:
        pos = nx.spring_layout(sub, seed=0, k=1.8 / max(1, len(nodes)) ** 0.5, weight="weight")
        labels = sorted({sub.nodes[n].get("label", "") for n in nodes})
        cmap = plt.get_cmap("tab10")
        color = {lab: cmap(i % 10) for i, lab in enumerate(labels)}
        counts = [sub.nodes[n].get("count", 1) for n in nodes]
        biggest = max(counts) or 1
        edges = list(sub.edges(data=True))
        weights = [d.get("weight", 1) for *_, d in edges]
        wmax = max(weights, default=1)
        nx.draw_networkx_edges(sub, pos, ax=ax, edgelist=[(a, b) for a, b, _ in edges], alpha=0.35,
                               edge_color="#555555",
                               width=[0.5 + 4 * w / wmax for w in weights])
        nx.draw_networkx_nodes(sub, pos, ax=ax, nodelist=nodes, node_size=[150 + 1800 * c / biggest for c in counts],
                               node_color=[color[sub.nodes[n].get("label", "")] for n in nodes], alpha=0.85)
        nx.draw_networkx_labels(sub, pos, ax=ax, font_size=9,
                                labels={n: str(sub.nodes[n].get("name", n))[:28] for n in nodes},
                                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
        for lab in labels:
            ax.scatter([], [], color=color[lab], label=lab)
        ax.legend(loc="lower left", fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
