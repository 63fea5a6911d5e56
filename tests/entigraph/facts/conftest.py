"""A two-document corpus about invented things, with entities whose mentions carry real offsets."""

from __future__ import annotations

import re

import pytest

from entigraph.records import Document, Entity, Mention

DOC_A = ("Marit Ellery founded the Quarrow Trust in 1887. "
         "Ellery built the tidal clock at Kettle Point. "
         "She later sold the clock to the Harbour Board for 4,000 crowns. "
         "The Quarrow Trust still owns the old salt warehouse.")
DOC_B = "Oskar Brenn mapped the Lumen Bay marshes in 1902. He named the northern channel after his daughter."


def _entity(eid: str, name: str, label: str, docs: dict[str, str], forms: list[str]) -> Entity:
    mentions = []
    for doc_id, text in docs.items():
        for form in forms:
            for m in re.finditer(r"(?<!\w)" + re.escape(form) + r"(?!\w)", text):
                if not any(x.start <= m.start() < x.end for x in mentions if x.doc_id == doc_id):
                    mentions.append(Mention(doc_id, f"{doc_id}:p0", m.start(), m.end(), m.group()))
    return Entity(eid, name, label, aliases=[f for f in forms if f != name], mentions=mentions,
                  doc_freq=len({m.doc_id for m in mentions}), count=len(mentions))


@pytest.fixture
def corpus():
    docs = [Document("a", "A", DOC_A), Document("b", "B", DOC_B)]
    texts = {d.doc_id: d.text for d in docs}
    entities = [
        _entity("marit-ellery", "Marit Ellery", "PERSON", {"a": DOC_A}, ["Marit Ellery", "Ellery"]),
        _entity("quarrow-trust", "Quarrow Trust", "ORG", {"a": DOC_A}, ["Quarrow Trust"]),
        _entity("kettle-point", "Kettle Point", "GPE", {"a": DOC_A}, ["Kettle Point"]),
        _entity("harbour-board", "Harbour Board", "ORG", {"a": DOC_A}, ["Harbour Board"]),
        _entity("oskar-brenn", "Oskar Brenn", "PERSON", {"b": DOC_B}, ["Oskar Brenn"]),
        _entity("lumen-bay", "Lumen Bay", "LOC", texts, ["Lumen Bay"]),
    ]
    return docs, entities
