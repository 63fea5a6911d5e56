

from entigraph.records import Document
from entigraph.retrieval import Retriever, chunk_documents, document_recall, rrf
from entigraph.retrieval.hybrid import Hit, latency_summary
from entigraph.retrieval.lexical import BM25Index

from eval_inputs import hashed_embed

DOCS = [
    Document("a-0000", "Tidal clock", "The Harbour Guild built the tidal clock in 1887. It kept time for the pilots."),
    Document("a-0001", "Salt marsh", "Mara Velt studied the salt marshes near Kettle Point. Herons nest there."),
    Document("a-0002", "Lighthouse", "Oskar Brenn painted the lighthouse red in 1902. Ships saw it for miles."),
]


def test_rrf_fuses_rankings_and_skips_missing():
    fused = rrf([[1, 2, 3], [3, 1, -1]], k=60)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert abs(fused[0][1] - (1 / 61 + 1 / 62)) < 1e-12


def test_bm25_matches_terms_and_marks_non_matches():
    index = BM25Index(["the tidal clock", "salt marshes and herons", "a red lighthouse"])
    scores, rows = index.search(["herons", "zeppelin", "the"], 2)
    assert rows[0, 0] == 1 and rows[0, 1] == -1
    assert (rows[1] == -1).all() and (rows[2] == -1).all()  # unknown word; stopword only


def test_each_method_finds_the_right_document(tmp_path):
    chunks = chunk_documents(DOCS, size=12, overlap=0)
    queries = ["Who built the tidal clock?", "Where did Mara Velt study marshes?", "What colour is the lighthouse?"]
    gold = ["a-0000", "a-0001", "a-0002"]
    for method in ("dense", "bm25", "hybrid"):
        r = Retriever.build(chunks, method, hashed_embed, "flat", tmp_path / method, "hashed")
        hits, seconds = r.search_many(queries, 2)
        assert [h[0].doc_id for h in hits] == gold, method
        assert document_recall(hits, gold, ks=(1, 2)) == {"recall@1": 1.0, "recall@2": 1.0}
        assert len(seconds) == 3
    assert (tmp_path / "dense" / "index.faiss").is_file()
    # a second build reuses the saved index instead of embedding again
    calls = []
    Retriever.build(chunks, "dense", lambda t: calls.append(t) or hashed_embed(t), "flat", tmp_path / "dense", "hashed")
    assert calls == []


def test_recall_ignores_queries_without_document_and_latency_summary():
    hits = [[Hit("x:c0", "x", 1.0), Hit("y:c0", "y", 0.5)], [Hit("y:c1", "y", 1.0)]]
    assert document_recall(hits, ["y", ""], ks=(1, 2)) == {"recall@1": 0.0, "recall@2": 1.0}
    assert latency_summary([0.001, 0.003])["mean_ms"] == 2.0
