from conftest import DOC_A

from entigraph.facts.support import Evidence, SupportGate, support
from entigraph.facts.units import name_forms


def test_support_measures_names_numbers_and_content_words():
    s = support("Marit Ellery sold the tidal clock to Zorblax for 5,000 crowns.", DOC_A)
    assert s.absent_names == ["Zorblax"] and s.absent_numbers == ["5000"]
    assert (s.shared, s.total) == (6, 7)  # marit ellery sold tidal clock crowns in the source; zorbla not


def test_supported_passage_is_kept_whole_and_paraphrase_passes():
    text = ("Marit Ellery established the Quarrow Trust in 1887.\n\n"
            "Ellery later sold the tidal clock to the Harbour Board for 4,000 crowns.")
    out = SupportGate().apply(text, DOC_A)
    assert out.kept and out.text == text and out.dropped == []


def test_unsupported_passage_is_dropped_with_reasons():
    text = ("Zorblax Venn founded the Quarrow Trust. The Trust was founded in 1847. "
            "Its members enjoy sailing, poetry and long dinners.")
    out = SupportGate().apply(text, DOC_A, vocab=set(Evidence.of(DOC_A).words))
    assert not out.kept and out.text == ""
    assert [d.reason for d in out.dropped] == [
        "name 'Zorblax Venn' absent from the source and the corpus",
        "number 1847 absent from the source",
        "shares 0/6 content words with the source (0.00 < 0.6)",
    ]
    assert out.reason == "keeps 0/3 sentences (0.00; needs >= 1 and >= 0.5 of them)"


def test_partly_supported_passage_keeps_its_supported_sentences():
    text = ("Marit Ellery founded the Quarrow Trust in 1887. It was a sunny and joyful era for everyone.\n"
            "Ellery built the tidal clock at Kettle Point. The clock was later painted blue by Anselm Roe.")
    out = SupportGate().apply(text, DOC_A)
    assert out.kept and (out.sentences, out.kept_sentences) == (4, 2)
    assert out.text == "Marit Ellery founded the Quarrow Trust in 1887.\nEllery built the tidal clock at Kettle Point."
    assert [text[d.start:d.end] for d in out.dropped] == [d.sentence for d in out.dropped]
    assert out.dropped[1].reason == "name 'Anselm Roe' absent from the source"
    strict = SupportGate(min_kept_share=0.75).apply(text, DOC_A)
    assert not strict.kept and strict.reason.startswith("keeps 2/4 sentences")


def test_quoting_the_source_is_supported():
    text = ('The record is plain: "Ellery built the tidal clock at Kettle Point." '
            'As the history puts it, "She later sold the clock to the Harbour Board for 4,000 crowns."')
    out = SupportGate().apply(text, DOC_A)
    assert out.kept and out.kept_sentences == 2 and out.dropped == []


def test_another_form_of_the_same_entity_counts_as_present(corpus):
    _, entities = corpus
    sentence = "Ellery's clock stands at Kettle Point."
    source = "Marit Ellery built a clock at Kettle Point."
    assert support(sentence, source).absent_names == []  # "Ellery" is a word of the source
    assert support("Marit Ellery built a clock.", "Ellery built a clock.").absent_names == ["Marit Ellery"]
    forms = name_forms(entities)
    assert support("Marit Ellery built a clock.", "Ellery built a clock.", forms).absent_names == []
    assert support("St. Kettle Point has a clock.", source).absent_names == []  # titles aside
