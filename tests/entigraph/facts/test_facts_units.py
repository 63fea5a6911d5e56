from entigraph.facts.units import SourceUnit, UnitIndex, name_forms, source_units
from entigraph.records import Entity, to_dict


def test_units_are_sentences_with_offsets_and_mentioned_entities(corpus):
    docs, entities = corpus
    units = source_units(docs, entities)
    assert [u.unit_id for u in units] == ["a:u0", "a:u1", "a:u2", "a:u3", "b:u0", "b:u1"]
    text = {d.doc_id: d.text for d in docs}
    assert all(text[u.doc_id][u.start:u.end] == u.text for u in units)
    a0, a1, a2 = units[:3]
    assert a0.entities == ["marit-ellery", "quarrow-trust"]
    assert a0.names == ["Marit Ellery", "Quarrow Trust"] and a0.numbers == ["1887"]
    assert a1.entities == ["marit-ellery", "kettle-point"]  # the short name is a mention of the person
    assert a2.entities == ["harbour-board"] and a2.numbers == ["4000"]
    assert "founde" in a0.content and "the" not in a0.content
    assert SourceUnit.from_json(to_dict(a1)) == a1


def test_entities_without_mentions_are_matched_by_name(corpus):
    docs, _ = corpus
    units = source_units(docs, [Entity("salt", "salt warehouse", "CONCEPT"), Entity("brenn", "Oskar Brenn", "PERSON")])
    assert [u.unit_id for u in units if u.entities] == ["a:u3", "b:u0"]
    assert units[3].mentions[0].text == "salt warehouse"
    assert docs[0].text[units[3].mentions[0].start:units[3].mentions[0].end] == "salt warehouse"


def test_name_forms_join_an_entitys_aliases(corpus):
    _, entities = corpus
    forms = name_forms(entities)
    assert forms["ellery"] == {"ellery", "marit ellery"} == forms["marit ellery"]


def test_index_candidates_share_a_content_word(corpus):
    docs, entities = corpus
    units = source_units(docs, entities)
    index = UnitIndex(units)
    assert index.candidates({"clock"}) == {1, 2}
    assert index.candidates({"clock", "marshe"}, doc_ids=["b"]) == {4}
    assert UnitIndex(units, max_postings=1).candidates({"clock", "marshe"}) == {4}  # common words are not followed


def test_a_list_number_is_not_a_number_of_the_unit():
    from entigraph.records import Document

    units = source_units([Document("h", "H", "1. Summary\n2. The gauge failed in 1963.")])
    assert [u.numbers for u in units] == [[], ["1963"]]
