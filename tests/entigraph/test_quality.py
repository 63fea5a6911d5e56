"""Data-report metrics and the HTML fragment."""

import numpy as np
import pytest

from entigraph.config import FilterConfig
from entigraph.graph import load_graph
from entigraph.filters import FilterContext, Outcome
from entigraph.text import words
from entigraph.quality import (
    build_report, compression_ratio, copy_rate, corpus_ngrams, distinct_n, embedding_coverage,
    entity_coverage, graph_ids, report_section_html, self_bleu,
)
from entigraph.records import Document, Entity, Passage, SynthPassage

TEXTS = [
    "the tide station on quarrow was built after the wreck of the schooner in 1879",
    "marit ellery kept the tide station for thirty one years and never missed a reading",
    "the drum gauge failed in the storm of 1963 when the float wire snapped in the night",
    "jonas pell rowed the boat patience across the sound to fetch a spare wire from saltmere",
    "visitors reach the island by the ferry from saltmere and walk up to brask house",
]


def test_distinct_n():
    toks = [["a", "b", "a", "b"], ["a", "b", "c"]]
    assert distinct_n(toks, 1) == 3 / 7
    assert distinct_n(toks, 2) == 3 / 5  # ab ba ab | ab bc
    assert distinct_n([["a"]], 2) is None


def test_self_bleu_matches_nltk_method1():
    # Reference from NLTK 3.10 (its import takes ~20 s here, so the value is pinned):
    #   toks = [words(t) for t in TEXTS]; sm = SmoothingFunction().method1
    #   mean(sentence_bleu(toks[:i] + toks[i+1:], toks[i], smoothing_function=sm) for i in range(5))
    toks = [words(t) for t in TEXTS]
    assert self_bleu(toks, sample=10, seed=0) == pytest.approx(0.04911065061949185, rel=1e-12)


def test_self_bleu_is_high_for_repeats_and_sampled_reproducibly():
    toks = [words(t) for t in TEXTS]
    assert self_bleu([toks[0]] * 3, sample=3, seed=0) == pytest.approx(1.0)
    assert self_bleu(toks, sample=3, seed=1) == self_bleu(toks, sample=3, seed=1)
    assert self_bleu(toks[:1], sample=3, seed=0) is None


def test_compression_and_copy_rate():
    assert compression_ratio([TEXTS[0]] * 20) > 3 * compression_ratio(TEXTS)
    grams = corpus_ngrams([Document("d", "t", " ".join(TEXTS))], 13)
    assert copy_rate([words(TEXTS[1])], grams) == 1.0
    assert copy_rate([words("an entirely new passage that says nothing from the corpus at all today")], grams) == 0.0
    assert copy_rate([["short"]], grams) is None


ENTITIES = [
    Entity("marit-ellery", "Marit Ellery", "PERSON", aliases=["Ellery"]),
    Entity("jonas-pell", "Jonas Pell", "PERSON"),
    Entity("brask-house", "Brask House", "FAC"),
    Entity("saltmere", "Saltmere", "GPE"),
]


@pytest.fixture
def ctx():
    docs = [Document("d", "t", " ".join(TEXTS))]
    return FilterContext.build(docs, [], ENTITIES)


def test_entity_and_edge_coverage(ctx, tmp_path):
    import networkx as nx

    g = nx.Graph()
    g.add_edge("marit-ellery", "jonas-pell")
    g.add_edge("jonas-pell", "saltmere")
    g.add_node("n9", name="Brask House")  # a node matched by its name attribute
    nx.write_graphml(g, tmp_path / "graph.graphml")
    nodes, edges = graph_ids(load_graph(tmp_path / "graph.graphml"), ENTITIES)
    assert set(nodes) == {"marit-ellery", "jonas-pell", "saltmere", "brask-house"}
    cov = entity_coverage(["Ellery met Jonas Pell.", "Saltmere is far away."], ctx, nodes, edges)
    assert cov == {"entity_coverage": 0.75, "edge_coverage": 0.5}
    nodes, edges = graph_ids(None, ENTITIES)
    assert len(nodes) == 4 and edges == []


def test_embedding_coverage():
    source = np.array([[1.0, 0.0], [0.0, 1.0]])
    synth = np.array([[1.0, 0.1], [0.9, 0.0]])
    cov = embedding_coverage(source, synth, threshold=0.9)
    assert cov["embedding_coverage"] == 0.5
    assert embedding_coverage(source, np.zeros((0, 2)), 0.9)["embedding_coverage"] is None


def sp(i, text, mode="summary", **kw):
    return SynthPassage(task_id=f"t{i}", mode=mode, entities=[], doc_ids=["d"], passage_ids=[],
                        text=text, completion_tokens=len(text.split()), seq=i, **kw)


def test_build_report_and_html(ctx):
    inputs = [sp(i, t) for i, t in enumerate(TEXTS)] + [sp(9, "", status="failed")]
    dropped = [(inputs[4], "noise", "contains <b>noise</b>"), (inputs[5], "failed", "generation failed")]
    stats = [{"filter": "failed", "evaluated": 6, "would_flag": 1, "dropped": 1, "repaired": 0,
              "remaining": 5, "tokens_remaining": 10},
             {"filter": "noise", "evaluated": 5, "would_flag": 1, "dropped": 1, "repaired": 0,
              "remaining": 4, "tokens_remaining": 8}]
    outcome = Outcome(kept=inputs[:4], dropped=dropped, edits={}, stats=stats)
    source = [Passage("d:p0", "d", 0, 0, 10, TEXTS[0])]
    fake_embed = lambda texts: np.array([[len(t), 1.0] for t in texts])  # noqa: E731
    report = build_report(inputs, outcome, ctx, FilterConfig(min_words=5), documents=[Document("d", "t", " ".join(TEXTS))],
                          source=source, entities=ENTITIES, embed=fake_embed)
    assert report["input"] == 6 and report["kept"] == 4 and report["dropped"] == 2
    assert report["metrics"]["before"]["passages"] == 5  # failed passages have no text to measure
    assert report["metrics"]["after"]["copy_rate"] == 1.0
    assert report["metrics"]["after"]["embedding_coverage"] == 1.0
    assert report["filters"][1]["examples"][0]["reason"] == "contains <b>noise</b>"
    html = report_section_html(report)
    # filters, before/after, source coverage (kept, as generated, per document), dropped examples
    assert html.count("<table>") == 6 and "contains &lt;b&gt;noise&lt;/b&gt;" in html
    assert "Source coverage" in html and "Sentence support gate" not in html  # the gate was off
    assert "Kept 4 of 6 passages (66.7%)" in html
    no_embed = build_report(inputs, outcome, ctx, FilterConfig(min_words=5), documents=[], source=source, entities=[])
    assert "embedding_coverage" not in no_embed["metrics"]["after"]


DOC = ("Marit Ellery founded the Quarrow Trust in 1887. Ellery built the tidal clock at Kettle Point. "
       "The Harbour Board bought the clock for 4,000 crowns. The Trust still owns the old salt warehouse.")
UNITS = DOC.split(". ")


def test_source_coverage_per_mode_counts_known_cases_exactly():
    doc = Document("d", "The Trust", DOC)
    ents = [Entity("marit-ellery", "Marit Ellery", "PERSON", aliases=["Ellery"]),
            Entity("harbour-board", "Harbour Board", "ORG")]
    ctx = FilterContext.build([doc], [Passage("d:p0", "d", 0, 0, len(DOC), DOC)], ents)
    permuted = ". ".join(UNITS[::-1]).rstrip(".") + "."
    kept = [sp(0, permuted, mode="permute"),  # every unit once
            sp(1, f"{UNITS[0]}. As the text says, {UNITS[0]}.", mode="explain"),  # unit 0 twice more
            sp(2, "Zorblax Venn painted the warehouse red.", mode="explain")]  # supports nothing, invents a name
    outcome = Outcome(kept=kept, dropped=[], edits={}, stats=[])
    report = build_report(kept, outcome, ctx, FilterConfig(), coverage_k=3, documents=[doc], source=[], entities=ents)
    cov = report["coverage"]
    assert (cov["units"], cov["documents"]) == (4, 1)
    modes = cov["after"]["modes"]
    assert (modes["permute"]["covered_1"], modes["permute"]["covered_k"]) == (1.0, 0.0)
    assert (modes["explain"]["covered_1"], modes["explain"]["covered_k"]) == (0.25, 0.0)
    assert (modes["*"]["covered_1"], modes["*"]["covered_k"]) == (1.0, 0.25)  # unit 0: 1 + 2 restatements
    assert modes["*"]["per_doc"]["d"] == {"units": 4, "covered_1": 1.0, "covered_k": 0.25}
    assert modes["permute"]["supported_sentence_rate"] == 1.0 and modes["permute"]["invented_name_rate"] == 0.0
    assert modes["explain"]["sentences"] == 3 and modes["explain"]["supported_sentence_rate"] == 2 / 3
    # names: Ellery, Quarrow Trust (the first word of a sentence is no name), Marit Ellery, Quarrow Trust, Venn
    assert modes["explain"]["invented_name_rate"] == 1 / 5
    html = report_section_html(report)
    assert "Source coverage" in html and "<strong>all modes</strong>" in html and "25.0 %" in html
