import pytest

import random

from entigraph.facts.transforms import (
    MentionIndex,
    Restorer,
    by_document,
    chain,
    entity_profile,
    grounded_qa,
    mine_reading_tasks,
    permute,
    profile_units,
    reading_tasks,
    relation_units,
    walk_units,
)
from entigraph.facts.units import source_units


@pytest.fixture
def units(corpus):
    docs, entities = corpus
    return source_units(docs, entities)


def test_permutation_keeps_every_unit_once_in_a_new_seeded_order(units):
    doc = by_document(units)["a"]
    out = permute(doc, seed=3)
    assert sorted(out.unit_ids) == [u.unit_id for u in doc] != out.unit_ids
    by_id = {u.unit_id: u.text for u in doc}
    assert out.text == " ".join(by_id[i] for i in out.unit_ids)
    assert permute(doc, seed=3) == out
    assert out.mode == "permute" and out.doc_ids == ["a"]


def test_profile_comes_from_the_entitys_mentions_with_full_names(corpus, units):
    _, entities = corpus
    ellery = next(e for e in entities if e.entity_id == "marit-ellery")
    plain = entity_profile(ellery, units, seed=0)
    assert sorted(plain.unit_ids) == ["a:u0", "a:u1"]  # the units whose mentions name her
    restorer = Restorer(units, entities)
    # "She later sold ..." follows a sentence naming one person: her pronoun resolves to her
    assert [u.unit_id for u in profile_units(ellery, units, restorer)] == ["a:u0", "a:u1", "a:u2"]
    out = entity_profile(ellery, units, seed=0, restorer=restorer)
    assert sorted(out.unit_ids) == ["a:u0", "a:u1", "a:u2"]
    assert "Marit Ellery built the tidal clock at Kettle Point." in out.text  # "Ellery built ..."
    assert "Marit Ellery later sold the clock to the Harbour Board" in out.text  # "She later sold ..."
    assert out.meta == {"entity": "marit-ellery", "name": "Marit Ellery"}
    assert entity_profile(ellery, [u for u in units if u.doc_id == "b"], seed=0) is None


def test_pronoun_with_two_candidates_is_left_alone(corpus, units):
    _, entities = corpus
    b1 = by_document(units)["b"][1]
    assert Restorer(units, entities)(b1) == "Oskar Brenn named the northern channel after his daughter."
    assert Restorer(units, [e for e in entities if e.label != "PERSON"])(b1) == b1.text


def test_reading_tasks_answer_with_spans_of_the_source(corpus, units):
    docs, _ = corpus
    text = {d.doc_id: d.text for d in docs}
    tasks = reading_tasks(units[0])
    assert {(t.kind, t.question, t.answer) for t in tasks} >= {
        ("who", "Who founded the Quarrow Trust in 1887?", "Marit Ellery"),
        ("what", "Marit Ellery founded what in 1887?", "Quarrow Trust"),
        ("when", "Marit Ellery founded the Quarrow Trust when?", "1887"),
        ("cloze", "Marit Ellery founded the ____ in 1887.", "Quarrow Trust"),
    }
    assert all(text[t.unit_id.split(":")[0]][t.start:t.end] == t.answer for u in units for t in reading_tasks(u))
    docs_out = mine_reading_tasks(units, seed=1)
    assert [d.doc_ids for d in docs_out] == [["a"], ["b"]]
    a = docs_out[0]
    assert a.text.startswith(text["a"]) and "\nAnswer: " in a.text
    assert all(f"Answer: {t['answer']}" in a.text for t in a.meta["tasks"])
    assert mine_reading_tasks(units, seed=1) == docs_out


def test_grounded_qa_pairs_end_with_the_sentence_that_states_the_answer(corpus, units):
    _, entities = corpus
    pairs = grounded_qa(units, seed=0, restorer=Restorer(units, entities))
    assert {p.unit_ids[0] for p in pairs} == {"a:u0", "a:u1", "a:u2", "a:u3", "b:u0"}  # b:u1 names nothing
    p = next(p for p in pairs if p.unit_ids == ["a:u2"])
    assert p.text.startswith("Question: ") and p.text.endswith(
        ". Marit Ellery later sold the clock to the Harbour Board for 4,000 crowns.")
    assert p.meta["task"]["answer"] in ("Harbour Board", "4,000")


def test_only_opening_person_pronouns_are_restored():
    from entigraph.records import Document, Entity, Mention
    text = "Anna Moll built Kettle Point. Its harbour is deep. The town honoured her with a statue. She left."
    ents = [Entity("anna", "Anna Moll", "PERSON", mentions=[Mention("d", "d:p0", 0, 9, "Anna Moll")]),
            Entity("kp", "Kettle Point", "GPE", mentions=[Mention("d", "d:p0", 16, 28, "Kettle Point")])]
    units = source_units([Document("d", "", text)], ents)
    restore = Restorer(units, ents)
    assert [restore(u) for u in units[1:]] == [
        "Its harbour is deep.",  # "it"/"its" too often point inside their own sentence
        "The town honoured her with a statue.",  # not among the first three words
        "She left.",  # the previous sentence names no person
    ]


def test_relation_puts_co_mentions_first_then_each_entitys_own_sentences(corpus, units):
    _, entities = corpus
    index = MentionIndex(units)
    # u0 names both; u1 ("Ellery built the tidal clock at Kettle Point") her alone; u3 the Trust alone
    chosen = relation_units(["marit-ellery", "quarrow-trust"], index, max_units=8)
    assert [u.unit_id for u in chosen] == ["a:u0", "a:u1", "a:u3"]
    assert [u.unit_id for u in relation_units(["marit-ellery", "quarrow-trust"], index, max_units=2)] == ["a:u0", "a:u1"]
    assert relation_units(["marit-ellery", "oskar-brenn"], index, 8) == []  # never named together: not related
    out = chain(chosen, "relation", Restorer(units, entities))
    assert out.text.split(". ")[1].startswith("Marit Ellery built")  # "Ellery" restored to her full name
    assert out.unit_ids == ["a:u0", "a:u1", "a:u3"] and out.doc_ids == ["a"]


def test_a_walk_hops_through_co_mentions_and_crosses_documents_where_it_can(corpus, units):
    index = MentionIndex(units)
    # Kettle Point -> Marit Ellery (u1), then a unit naming her and a new entity: u0 (the Trust)
    walked, path = walk_units("kettle-point", "a", index, length=3, rng=random.Random(0))
    assert [u.unit_id for u in walked] == ["a:u1", "a:u0"] and path == ["kettle-point", "marit-ellery", "quarrow-trust"]
    for k, u in enumerate(walked):  # each unit names the entity it came from and the one it leads to
        assert {path[k], path[k + 1]} <= set(u.entities)
    assert walk_units("kettle-point", "b", index, 3, random.Random(0)) == ([], ["kettle-point"])  # starts at home
    assert walk_units("kettle-point", "a", index, 3, random.Random(5)) == (walked, path)  # one way on: any seed


def test_skipped_entities_link_nothing(units):
    index = MentionIndex(units, skip={"quarrow-trust"})  # as a common-noun concept would be
    assert relation_units(["marit-ellery", "quarrow-trust"], index, 8) == []
    walked, path = walk_units("kettle-point", "a", index, length=3, rng=random.Random(0))
    assert [u.unit_id for u in walked] == ["a:u1"] and path == ["kettle-point", "marit-ellery"]  # no way on
