"""Co-occurrence edges, weights, provenance, and GraphML / JSON round-trips."""

from entigraph.graph import build_graph, draw_top, load_graph, passage_entities, write_graph
from entigraph.records import Entity, Mention, Passage


def passages():
    # two overlapping windows of one document, and one of another
    return [Passage("a:p0000", "a", 0, 0, 100, ""), Passage("a:p0001", "a", 1, 80, 200, ""),
            Passage("b:p0000", "b", 0, 0, 50, "")]


def ent(eid, *spans):
    return Entity(eid, eid.title(), "PERSON", aliases=[eid.upper()], doc_freq=len({d for d, *_ in spans}),
                  count=len(spans), mentions=[Mention(d, "", s, e, eid) for d, s, e in spans])


def test_edges_weights_and_provenance():
    ents = [ent("x", ("a", 10, 15), ("b", 5, 6)),
            ent("y", ("a", 85, 90)),  # in the overlap: both windows of a
            ent("z", ("a", 150, 155), ("b", 20, 25))]
    sets = passage_entities(ents, passages())
    assert sets == {"a:p0000": {"x", "y"}, "a:p0001": {"y", "z"}, "b:p0000": {"x", "z"}}
    g = build_graph(ents, passages())
    assert g.number_of_nodes() == 3 and g.number_of_edges() == 3
    assert g["x"]["y"]["weight"] == 1 and g["x"]["y"]["passages"] == ["a:p0000"]
    assert g["x"]["z"]["docs"] == ["b"]
    assert g.nodes["x"]["mentions"] == [["a", 10, 15], ["b", 5, 6]]


def test_provenance_is_capped_but_weight_is_true():
    ps = [Passage(f"a:p{i:04d}", "a", i, i * 10, i * 10 + 10, "") for i in range(30)]
    spans = [("a", i * 10, i * 10 + 2) for i in range(30)]
    g = build_graph([ent("x", *spans), ent("y", *[(d, s + 3, e + 3) for d, s, e in spans])], ps, max_provenance=5)
    assert g["x"]["y"]["weight"] == 30
    assert g["x"]["y"]["passages"] == [f"a:p{i:04d}" for i in range(5)]


def test_no_entities_no_edges(tmp_path):
    g = build_graph([], passages())
    write_graph(g, tmp_path / "g.graphml", tmp_path / "g.json")
    draw_top(g, tmp_path / "g.png")
    assert load_graph(tmp_path / "g.graphml").number_of_nodes() == 0
    assert (tmp_path / "g.png").stat().st_size > 0


def test_graphml_and_json_round_trip(tmp_path):
    ents = [ent("x", ("a", 10, 15)), ent("y", ("a", 20, 25)), ent("z", ("a", 150, 155))]
    g = build_graph(ents, passages(), salience={"x": 2.0})
    write_graph(g, tmp_path / "graph.graphml", tmp_path / "graph.json")
    for path in (tmp_path / "graph.graphml", tmp_path / "graph.json", tmp_path):
        h = load_graph(path)
        assert set(h.nodes) == set(g.nodes) and set(map(frozenset, h.edges)) == set(map(frozenset, g.edges))
        for n in g.nodes:
            assert h.nodes[n] == g.nodes[n]  # lists come back as lists, ints as ints
        assert h["x"]["y"] == g["x"]["y"]
    draw_top(g, tmp_path / "graph.png", top=2)
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"
