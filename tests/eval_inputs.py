"""A two-document QuALITY-style corpus and an offline embedder, shared by the evaluation tests and the
eval stage's tests."""

import hashlib
import json
import re

import numpy as np

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.corpus import load_corpus
from entigraph.evaluation import compare
from entigraph.io import write_jsonl
from entigraph.records import to_dict

ROWS = [
    {"input": "THE TIDAL CLOCK\n\nThe Harbour Guild built the tidal clock in 1887. Mara Velt kept its records.",
     "instructions": ["Who built the tidal clock?\n\n (A) Mara Velt\n (B) The Harbour Guild\n (C) Oskar Brenn\n (D) Nobody",
                      "When was it built?\n\n (A) 1887\n (B) 1901\n (C) 1931\n (D) 1963"],
     "outputs": ["(B) The Harbour Guild", "(A) 1887"]},
    {"input": "KETTLE POINT\n\nOskar Brenn painted the lighthouse at Kettle Point red. Herons nest in the salt marsh.",
     "instructions": ["What colour is the lighthouse?\n\n (A) Blue\n (B) White\n (C) Red\n (D) Green"],
     "outputs": ["(C) Red"]},
]


def hashed_embed(texts, dim=64):
    """Deterministic bag-of-words embedding: dense retrieval testable without a model, offline."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % dim] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def hashed_embedder(cfg):
    """compare.make_embedder's stand-in: hashed_embed in place of MiniLM."""
    return hashed_embed


def mini_run(tmp_path, tiny_lm, monkeypatch) -> RunConfig:
    """A run whose extract stage holds ROWS' documents, scored with the tiny model and hashed_embedder."""
    corpus = tmp_path / "mini.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cfg = RunConfig(name="t", run_dir=str(tmp_path / "runs"), device="cpu")
    cfg.corpus.paths = [str(corpus)]
    cfg.models.base = tiny_lm
    cfg.eval.bootstrap = 200
    cfg.eval.dtype = "float32"
    cfg.eval.retrieval.chunk_words = 12
    cfg.eval.retrieval.chunk_overlap = 0
    write_jsonl(artifacts.stage_dir(cfg.out, "extract") / "documents.jsonl",
                [to_dict(d) for d in load_corpus(cfg.corpus.paths)])
    monkeypatch.setattr(compare, "make_embedder", hashed_embedder)
    return cfg
