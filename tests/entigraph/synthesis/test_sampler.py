import itertools
import math

import pytest
from synth_inputs import tiny_config, write_inputs

from entigraph import artifacts
from entigraph.corpus import split_passages
from entigraph.records import Document, Entity, Mention
from entigraph.synthesis.sampler import Permutation, RelationSampler, build_index, unrank_pair, unrank_triple


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("sampler"), "unused")
    write_inputs(cfg)
    out = cfg.out
    return artifacts.documents(out), artifacts.passages(out), artifacts.entities(out), artifacts.graph(out)


def sampler(inputs, graph=True, **kw):
    docs, passages, ents, g = inputs
    kw.setdefault("modes", ["summary", "pair", "triple"])
    return RelationSampler(build_index(docs, passages, ents, g if graph else None), ents, passages, **kw)


@pytest.mark.parametrize("n", [3, 4, 9])
def test_unrank_enumerates_combinations_in_colex_order(n):
    colex = lambda k: sorted(itertools.combinations(range(n), k), key=lambda t: t[::-1])
    assert [unrank_pair(i) for i in range(math.comb(n, 2))] == colex(2)
    assert [unrank_triple(i) for i in range(math.comb(n, 3))] == colex(3)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
def test_permutation_is_a_seeded_bijection(n):
    p = Permutation(n, "seed")
    assert sorted(p) == list(range(n))
    assert list(p) == list(Permutation(n, "seed"))
    if n > 10:
        assert list(p) != list(Permutation(n, "other")) and list(p) != list(range(n))


def test_huge_triple_space_is_sampled_lazily():
    n = 10_000
    p = Permutation(math.comb(n, 3), "s")
    first = [unrank_triple(p[i]) for i in range(2000)]
    assert len(set(first)) == 2000 and all(a < b < c < n for a, b, c in first)


@pytest.mark.parametrize("strategy", ["exhaustive", "coverage", "weighted"])
def test_reproducible_unique_and_within_documents(inputs, strategy):
    docs, passages, ents, _ = inputs
    a, b = list(sampler(inputs, strategy=strategy)), list(sampler(inputs, strategy=strategy))
    assert [t.task_id for t in a] == [t.task_id for t in b]
    assert len({t.task_id for t in a}) == len(a)
    assert [t.seq for t in a] == list(range(len(a)))
    ents_of = {d.doc_id: {e.name for e in ents for m in e.mentions if m.doc_id == d.doc_id} for d in docs}
    for t in a:
        assert set(t.entities) <= ents_of[t.doc_ids[0]]
        assert all(p.startswith(t.doc_ids[0] + ":") for p in t.passage_ids)
    other = list(sampler(inputs, strategy=strategy, seed=1))
    if strategy != "coverage":  # coverage's first passes are deterministic by design
        assert [t.task_id for t in other] != [t.task_id for t in a]


def test_exhaustive_is_all_pairs_then_all_triples(inputs):
    docs, _, ents, _ = inputs
    tasks = list(sampler(inputs, strategy="exhaustive"))
    modes = [t.mode for t in tasks]
    assert modes == sorted(modes, key=["summary", "pair", "triple"].index)
    for d in docs:
        n = len({e.name for e in ents for m in e.mentions if m.doc_id == d.doc_id})
        mine = [t for t in tasks if t.doc_ids == [d.doc_id]]
        pairs = {frozenset(t.entities) for t in mine if t.mode == "pair"}
        triples = {frozenset(t.entities) for t in mine if t.mode == "triple"}
        assert len(pairs) == math.comb(n, 2) and len(triples) == math.comb(n, 3)


def test_coverage_pairs_every_entity_then_every_cooccurring_pair(inputs):
    docs, passages, ents, graph = inputs
    index = build_index(docs, passages, ents, graph)
    tasks = list(sampler(inputs, strategy="coverage", modes=["pair"]))
    for idx in index:
        names = {ents[g].name for g in idx.entities}
        pairs = [frozenset(t.entities) for t in tasks if t.doc_ids == [idx.doc.doc_id]]
        seen: set = set()
        first_pass = []
        for p in pairs:  # the entity pass: no entity repeats until each has appeared
            if seen >= names:
                break
            first_pass.append(p)
            seen |= p
        assert seen == names and len(first_pass) <= math.ceil(len(names) / 2) + 1
        edges = {frozenset((ents[idx.entities[a]].name, ents[idx.entities[b]].name)) for _, a, b in idx.edges}
        last_edge = max(pairs.index(e) for e in edges)
        assert all(p in edges for p in pairs[:last_edge + 1] if p not in first_pass)
        assert len(pairs) == len(set(pairs)) == math.comb(len(names), 2)


def test_weighted_draws_only_cooccurring_tuples(inputs):
    docs, passages, ents, graph = inputs
    index = {i.doc.doc_id: i for i in build_index(docs, passages, ents, graph)}
    for t in sampler(inputs, strategy="weighted", modes=["pair", "triple"]):
        idx = index[t.doc_ids[0]]
        local = {ents[g].name: i for i, g in enumerate(idx.entities)}
        ids = [local[n] for n in t.entities]
        if t.mode == "pair":
            assert ids[1] in idx.weights[ids[0]]
        else:  # a triple grows from an edge: connected
            links = sum(b in idx.weights.get(a, {}) for a, b in itertools.combinations(ids, 2))
            assert links >= 2


def test_graph_and_mentions_give_the_same_cooccurrence(inputs):
    docs, passages, ents, graph = inputs
    with_graph = build_index(docs, passages, ents, graph)
    from_mentions = build_index(docs, passages, ents, None)
    assert [i.weights for i in with_graph] == [i.weights for i in from_mentions]


def test_local_context_is_capped_and_mentions_the_entities(inputs):
    docs, passages, ents, _ = inputs
    text = {p.passage_id: p.text for p in passages}
    tokens = {pid: len(t.split()) for pid, t in text.items()}
    for t in sampler(inputs, context_tokens=60, passage_tokens=tokens):
        assert t.passage_ids == sorted(t.passage_ids)
        assert sum(tokens[p] for p in t.passage_ids) <= 60 or len(t.passage_ids) == 1
        if t.mode != "summary":
            assert any(e in text[p] for p in t.passage_ids for e in t.entities)
    for t in sampler(inputs, context="document"):
        assert t.passage_ids == [p.passage_id for p in passages if p.doc_id == t.doc_ids[0]]


def test_rephrase_is_one_task_per_passage(inputs):
    _, passages, _, _ = inputs
    tasks = list(sampler(inputs, modes=["rephrase"]))
    assert sorted(p for t in tasks for p in t.passage_ids) == sorted(p.passage_id for p in passages)


def test_salt_changes_task_ids(inputs):
    a = [t.task_id for t in sampler(inputs, salt={"pair": {"template": "1+aa"}})]
    b = [t.task_id for t in sampler(inputs, salt={"pair": {"template": "1+bb"}})]
    modes = [t.mode for t in sampler(inputs)]
    assert all((x == y) == (m != "pair") for x, y, m in zip(a, b, modes))


def test_many_entities_in_one_document_is_cheap():
    doc = Document("big", "Big", " ".join(f"w{i}" for i in range(3000)))
    passages = split_passages(doc, 30, 5)
    ents = [Entity(f"e{i}", f"E{i}", "X", mentions=[Mention("big", passages[i % len(passages)].passage_id, 0, 1, "x")])
            for i in range(5000)]
    s = RelationSampler(build_index([doc], passages, ents), ents, passages, modes=["triple"], strategy="exhaustive")
    first = list(itertools.islice(s, 500))
    assert len({t.task_id for t in first}) == 500 and all(t.mode == "triple" for t in first)


def test_the_graph_decides_which_pairs_are_related(inputs):
    docs, passages, ents, graph = inputs
    pruned = graph.copy()
    u, v = next(iter(pruned.edges()))
    pruned.remove_edge(u, v)
    names = {e.entity_id: e.name for e in ents}
    tasks = list(RelationSampler(build_index(docs, passages, ents, pruned), ents, passages, modes=["pair"],
                                 strategy="weighted"))
    assert tasks and {names[u], names[v]} not in [set(t.entities) for t in tasks]
