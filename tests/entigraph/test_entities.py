"""Entity normalisation, alias merging, LLM answer repair, min_freq and the per-document cap.

Candidates are built by hand (no spaCy) so each rule is tested alone; test_extract.py runs spaCy.
"""

import pytest

from entigraph.backends.base import Generation
from entigraph.config import load_config
from entigraph.corpus import split_passages
from entigraph.entities import (CONCEPT, Candidate, Drops, clean_span, find_in_text, llm_candidates,
                                llm_chunks, match_aliases, merge, normalize_key, parse_llm_entities, slug)
from entigraph.records import Document


def cfg(**entities):
    return load_config(None, [f"entities.{k}={v}" for k, v in entities.items()])


def cands_for(doc: Document, names: dict[str, str]) -> list[Candidate]:
    """A candidate at every occurrence of each name (what an extractor would propose)."""
    out = []
    for name, label in names.items():
        pos = doc.text.find(name)
        while pos >= 0:
            out.append(Candidate(doc.doc_id, pos, pos + len(name), name, label, "spacy", name))
            pos = doc.text.find(name, pos + 1)
    return out


def run_merge(docs, names_per_doc, **entities):
    passages = [p for d in docs for p in split_passages(d, 40, 10)]
    cands = [c for d, names in zip(docs, names_per_doc) for c in cands_for(d, names)]
    drops = Drops()
    return merge(cands, docs, passages, cfg(**entities), drops), drops


@pytest.mark.parametrize("surface,key", [
    ("Mr. Holmes's", "holmes"), ("Holmes'", "holmes"), ("the Ruler", "ruler"), ("The Ruler", "ruler"),
    ("Tr'en", "tren"), ("Senior Lieutenant Cob", "cob"), ("Captain", "captain"),
])
def test_normalize_key(surface, key):
    assert normalize_key(surface) == key


def test_plural_merges_only_for_common_nouns():
    assert normalize_key("lie-detectors", singular=True) == normalize_key("lie detector", singular=True)
    assert normalize_key("Holmes") == "holmes"  # names are never singularised
    assert slug("Kal-Jmar's  Gate") == "kal-jmars-gate"


def test_clean_span_trims_article_possessive_and_punctuation():
    text = 'He saw "the Ruler\'s" guards. Pa. O.Q. Holmes\' hat'
    cut = lambda s: text[slice(*clean_span(text, text.index(s), text.index(s) + len(s)))]
    assert cut('"the Ruler\'s"') == "Ruler"
    assert cut("Holmes'") == "Holmes"
    assert cut("O.Q.") == "O.Q."  # an abbreviation keeps its period
    assert clean_span(text, 0, 0) is None


def test_aliases_merge_into_one_entity():
    text = ("Sherlock Holmes lit his pipe. Mr. Holmes said nothing. Holmes's violin lay there, "
            "and Holmes' hat too. The Ruler spoke; the Ruler left. Ruler of nothing, said Holmes.")
    doc = Document("d1", "t", text)
    res, _ = run_merge([doc], [{"Sherlock Holmes": "PERSON", "Holmes": "PERSON", "Mr. Holmes": "PERSON",
                                "Holmes's": "PERSON", "the Ruler": "PERSON", "Ruler": "PERSON"}])
    by_id = {e.entity_id: e for e in res.entities}
    holmes = by_id["sherlock-holmes"]
    assert holmes.name == "Sherlock Holmes"
    assert holmes.count == 5  # every form, possessives and honorific included
    assert {"Holmes", "Mr. Holmes", "Holmes's"} <= set(holmes.aliases)
    assert "holmes" not in by_id
    ruler = by_id["ruler"]
    assert ruler.count == 3 and "the Ruler" in ruler.aliases
    assert all(text[m.start:m.end] == m.text for e in res.entities for m in e.mentions)


def test_ambiguous_short_name_stays_separate_and_merging_is_per_document():
    a = Document("a", "a", "John Smith met Mary Smith. Smith waved. John Smith left; Mary Smith stayed.")
    b = Document("b", "b", "Ann Johnson wrote. Johnson signed it. Johnson left early.")
    c = Document("c", "c", "Johnson, a farmer, sold hay to Johnson's neighbour Bob Miller.")
    res, drops = run_merge(
        [a, b, c],
        [{"John Smith": "PERSON", "Mary Smith": "PERSON", "Smith": "PERSON"},
         {"Ann Johnson": "PERSON", "Johnson": "PERSON"},
         {"Johnson": "PERSON", "Bob Miller": "PERSON"}])
    by_id = {e.entity_id: e for e in res.entities}
    assert by_id["smith"].count == 1  # two longer Smiths: ambiguous, kept separate
    assert any(r.startswith("smith ->") for r in drops.reasons["ambiguous short name (kept separate)"])
    assert by_id["ann-johnson"].count == 3  # doc b: Johnson is Ann Johnson
    assert {m.doc_id for m in by_id["johnson"].mentions} == {"c"}  # doc c: another Johnson


def test_span_joining_two_entities_is_dropped():
    doc = Document("d", "t", "Korvin met the Tr'en. Tr'en Korvin, they called him. Korvin left the Tr'en.")
    res, drops = run_merge([doc], [{"Korvin": "PERSON", "Tr'en": "NORP", "Tr'en Korvin": "PERSON"}])
    ids = {e.entity_id for e in res.entities}
    assert "korvin" in ids and "tren" in ids and "tren-korvin" not in ids
    assert "Tr'en Korvin" in drops.reasons["joins two entities"]


def test_capitalised_common_word_becomes_a_concept():
    doc = Document("d", "t", "Ship ahoy. The ship sank. A ship, another ship. Ship lost. Ada Lovelace sailed.")
    res, _ = run_merge([doc], [{"Ship": "ORG", "ship": CONCEPT, "Ada Lovelace": "PERSON"}])
    labels = {e.entity_id: e.label for e in res.entities}
    assert labels["ship"] == CONCEPT and labels["ada-lovelace"] == "PERSON"


def test_min_freq_binds_concepts_not_names():
    doc = Document("d", "t", "The lighthouse stood. A lighthouse keeper, Mara Velt, kept the lighthouse. "
                             "A gauge hung there. Lumen Bay was near.")
    res, drops = run_merge([doc], [{"lighthouse": CONCEPT, "gauge": CONCEPT, "Mara Velt": "PERSON",
                                    "Lumen Bay": "GPE"}], min_freq=2)
    ids = [e.entity_id for e in res.entities]
    assert "lighthouse" in ids and "gauge" not in ids
    assert "gauge" in drops.reasons["min_freq"]
    assert "mara-velt" in ids and "lumen-bay" in ids  # labelled names count even when seen once
    assert ids.index("lumen-bay") > ids.index("lighthouse")  # ... but rank after frequent entities


def test_per_document_cap_keeps_the_most_salient_named_first():
    names = {f"Person{c}": "PERSON" for c in "ABCDE"}
    text = " ".join(f"Person{c} spoke." * n for c, n in zip("ABCDE", (5, 4, 3, 2, 2)))
    text += " The harbour, the harbour, the harbour, the harbour, the harbour, the harbour."
    doc = Document("d", "t", text)
    res, drops = run_merge([doc], [{**names, "harbour": CONCEPT}], max_per_doc=3)
    assert [e.name for e in res.entities] == ["PersonA", "PersonB", "PersonC"]
    assert drops.reasons["max_per_doc"]["harbour"] == 1


def test_match_aliases_longest_first_and_case():
    text = "Sherlock  Holmes and Holmes; will Will go? White House. Secret Service"
    hits = match_aliases(text, {"Sherlock Holmes": "sh", "Holmes": "h", "Will": "w",
                                "White House Secret Service": "x"})
    assert [(text[s:e], t) for s, e, t in hits] == [("Sherlock  Holmes", "sh"), ("Holmes", "h"), ("Will", "w")]


# --- LLM answers -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    '{"summary": "s", "entities": ["Korvin", "the Ruler"]}',
    '```json\n{"summary": "s", "entities": ["Korvin", "the Ruler",]}\n```',
    "Sure! Here it is:\n{'summary': 's', 'entities': ['Korvin', 'the Ruler']} Hope this helps.",
    '{"summary": "s", "entities": ["Korvin", "the Ruler", "lie-det',  # truncated at max_new_tokens
    '{"summary": "s", "entities": [{"name": "Korvin", "type": "person"}, {"name": "the Ruler"}]}',
    "Entities:\n1. Korvin\n2. the Ruler\n",
    "- **Korvin**: the prisoner\n- the Ruler\n",
])
def test_parse_llm_entities_repairs(answer):
    names = [n for n, _ in parse_llm_entities(answer)]
    assert names[:2] == ["Korvin", "the Ruler"]


def test_parse_llm_entities_keeps_apostrophes_and_types():
    assert parse_llm_entities("{'entities': ['Tr\\'en']}") or True  # no crash on escaped quotes
    assert parse_llm_entities('{"entities": [{"name": "Korvin", "type": "Person"}]}') == [("Korvin", "person")]
    assert parse_llm_entities("[\"Tr'en\", 'Korvin']") == [("Tr'en", ""), ("Korvin", "")]


@pytest.mark.parametrize("answer", ["", "I cannot help with that.", "{}", '{"summary": "nothing"}'])
def test_parse_llm_entities_rejects_garbage(answer):
    with pytest.raises(ValueError):
        parse_llm_entities(answer)


class FakeBackend:
    """Implements the Backend protocol: answers from a script, one list per call."""

    name, model = "fake", "fake"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def generate(self, requests):
        self.calls.append(requests)
        out = []
        for _ in requests:
            a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            out.append(Generation("", finish_reason="error", error=a[6:]) if a.startswith("ERROR:")
                       else Generation(a, completion_tokens=len(a.split())))
        return out

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


DOC = Document("d", "Lost", "Korvin sat in the cell. The Ruler of the Tr'en questioned Korvin about the lie detector.")


def test_llm_retry_then_success_and_hallucinations_dropped():
    backend = FakeBackend(["not json at all", '{"entities": ["korvin", "Ruler", "Atlantis", "lie detector"]}'])
    drops = Drops()
    cands, failures = llm_candidates([DOC], split_passages(DOC), cfg(extractor="llm"), backend, drops)
    assert len(backend.calls) == 2 and failures == []
    assert {c.text for c in cands} == {"Korvin", "Ruler", "lie detector"}  # document casing
    assert "Atlantis" in drops.reasons["llm: hallucinated (not in the document)"]
    assert {c.label for c in cands if c.text == "lie detector"} == {CONCEPT}


def test_llm_failure_is_recorded_not_raised():
    backend = FakeBackend(["no entities here", "ERROR:timeout", "still nothing"])
    cands, failures = llm_candidates([DOC], split_passages(DOC), cfg(extractor="llm", llm_retries=2),
                                     backend, Drops())
    assert cands == [] and len(backend.calls) == 3
    assert failures[0]["doc_id"] == "d" and failures[0]["attempts"] == 3
    assert "no JSON" in failures[0]["error"]


def test_llm_chunks_group_passages_under_budget():
    doc = Document("d", "t", " ".join(f"w{i}." for i in range(1000)))
    passages = split_passages(doc, 100, 20)
    chunks = llm_chunks(passages, 250, lambda t: len(t.split()))
    assert len(chunks) < len(passages)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(doc.text)
    assert all(len(doc.text[s:e].split()) <= 300 for s, e in chunks)  # 2 windows of 100 + overlap


def test_find_in_text_is_case_insensitive_and_word_bounded():
    text = "The Tr'en\n ruled. Tren is not it. ruler"
    assert find_in_text(text, "tr'en") == (4, 9)
    assert find_in_text(text, "rule") is None


def test_short_names_link_across_documents_when_asked():
    a = Document("a", "a", "Ottoline Brask founded the station. Ottoline Brask wrote the rules.")
    b = Document("b", "b", "Brask hired a keeper. Miss Brask paid him. J. Pell kept the ledger.")
    c = Document("c", "c", "Jonas Pell arrived in 1959. Jonas Pell stayed.")
    cands = [{"Ottoline Brask": "PERSON"}, {"Brask": "PERSON", "J. Pell": "PERSON"}, {"Jonas Pell": "PERSON"}]
    res, _ = run_merge([a, b, c], cands)
    assert {"brask", "j-pell"} & {e.entity_id for e in res.entities}  # separate by default
    res, _ = run_merge([a, b, c], cands, link_across_documents=True)
    by_id = {e.entity_id: e for e in res.entities}
    assert "brask" not in by_id and by_id["ottoline-brask"].doc_freq == 2
    assert "j-pell" not in by_id and "J. Pell" in by_id["jonas-pell"].aliases
