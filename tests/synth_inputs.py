"""Tiny extract-stage outputs (documents, passages, entities, graph) for the synthesis tests,
built here so those tests do not depend on the extract stage's code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.corpus import split_passages
from entigraph.io import write_jsonl
from entigraph.records import Document, Entity, Mention, to_dict

CAST = {
    "tide": ["Mara Velt", "Oskar Brenn", "Lumen Bay", "Harbour Guild", "Kettle Point", "Tidal Clock"],
    "salt": ["Ida Korr", "Saltmere", "Merrow Rock", "Pilots' Society", "Mara Velt"],
}


def make_documents(sentences: int = 12) -> list[Document]:
    docs = []
    for d, (name, cast) in enumerate(CAST.items()):
        lines = [f"In year {1870 + i}, {cast[i % len(cast)]} met {cast[(i * 2 + 1) % len(cast)]} "
                 f"near the old pier." for i in range(sentences)]
        docs.append(Document(f"{name}-{d:04d}", f"The {name} story", " ".join(lines), "test"))
    return docs


def write_inputs(cfg: RunConfig, sentences: int = 12, passage_words: int = 24) -> None:
    """Write documents, passages, entities (by salience) and graph.graphml under cfg.out/extract."""
    out = artifacts.stage_dir(cfg.out, "extract")
    docs = make_documents(sentences)
    passages = [p for doc in docs for p in split_passages(doc, passage_words, 6)]
    found: dict[str, Entity] = {}
    for doc in docs:
        for name in CAST[doc.doc_id.split("-")[0]]:
            ent = found.setdefault(name, Entity(re.sub(r"\W+", "_", name.lower()), name, "PERSON"))
            for m in re.finditer(re.escape(name), doc.text):
                for p in passages:
                    if p.doc_id == doc.doc_id and p.start <= m.start() and m.end() <= p.end:
                        ent.mentions.append(Mention(doc.doc_id, p.passage_id, m.start(), m.end(), name))
    entities = sorted((e for e in found.values() if e.mentions), key=lambda e: -len(e.mentions))
    graph = nx.Graph()
    for e in entities:
        e.count = len(e.mentions)
        e.doc_freq = len({m.doc_id for m in e.mentions})
        graph.add_node(e.entity_id, name=e.name)
    shared: dict[tuple[str, str], set[str]] = {}
    for a in entities:
        for b in entities:
            if a.entity_id < b.entity_id:
                common = {m.passage_id for m in a.mentions} & {m.passage_id for m in b.mentions}
                if common:
                    shared[a.entity_id, b.entity_id] = common
    for (a, b), pids in shared.items():
        graph.add_edge(a, b, weight=len(pids), passages=json.dumps(sorted(pids)))
    write_jsonl(out / "documents.jsonl", (to_dict(d) for d in docs))
    write_jsonl(out / "passages.jsonl", (to_dict(p) for p in passages))
    write_jsonl(out / "entities.jsonl", (to_dict(e) for e in entities))
    nx.write_graphml(graph, out / "graph.graphml")


def tiny_config(tmp_path: Path, model: str, backend: str = "hf", batch_size: int = 4, **synthesis) -> RunConfig:
    cfg = RunConfig(name="t", run_dir=str(tmp_path))
    cfg.device = "cpu"
    b, s = cfg.backend, cfg.synthesis
    b.kind, b.model, b.batch_size, b.sampling.max_new_tokens = backend, model, batch_size, 16
    s.max_passages, s.context_tokens = 12, 96
    for key, value in synthesis.items():
        setattr(s, key, value)
    return cfg
