import numpy as np

from entigraph.retrieval.index import MIN_IVF, DenseIndex, index_key, plan_index


def unit_vectors(n, d=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_and_hnsw_find_each_vector_itself():
    x = unit_vectors(200)
    for kind in ("flat", "hnsw"):
        index = DenseIndex.build(x, [f"c{i}" for i in range(200)], kind)
        scores, rows = index.search(x[:20], 3)
        assert rows[:, 0].tolist() == list(range(20)), kind
        assert np.allclose(scores[:, 0], 1.0, atol=1e-4)


def test_ivfpq_falls_back_to_flat_for_tiny_corpora_with_a_note():
    plan = plan_index("ivfpq", 50, 384)
    assert plan.kind == "flat" and "using flat" in plan.note


def test_ivfpq_plan_scales_with_corpus_size():
    small, large = plan_index("ivfpq", 2000, 384), plan_index("ivfpq", 100_000, 384)
    assert small.kind == large.kind == "ivfpq"
    assert small.params["nlist"] <= 2000 // 39 and large.params["nlist"] == int(4 * 100_000 ** 0.5)
    assert 384 % large.params["m"] == 0 and large.params["nbits"] == 8 and small.params["nbits"] < 8


def test_ivfpq_builds_and_keeps_most_neighbours():
    x = unit_vectors(MIN_IVF + 200, d=32, seed=1)
    index = DenseIndex.build(x, [str(i) for i in range(len(x))], "ivfpq")
    assert index.plan.kind == "ivfpq"
    _, rows = index.search(x[:50], 5)
    assert (rows == np.arange(50)[:, None]).any(axis=1).mean() > 0.6  # itself within the top 5


def test_save_and_load_checks_the_key(tmp_path):
    x = unit_vectors(30)
    ids = [f"c{i}" for i in range(30)]
    key = index_key("emb", "hnsw", ids)
    DenseIndex.build(x, ids, "hnsw", key).save(tmp_path)
    loaded = DenseIndex.load(tmp_path, key)
    assert loaded is not None and loaded.ids == ids and loaded.plan.kind == "hnsw"
    assert loaded.search(x[:1], 1)[1][0, 0] == 0
    assert DenseIndex.load(tmp_path, index_key("other-embedder", "hnsw", ids)) is None
    assert DenseIndex.load(tmp_path / "absent") is None
