"""Generated probes: cloze questions mined from the documents, for corpora without questions."""

from __future__ import annotations

import re

import pytest

from entigraph.backends.base import Generation
from entigraph.config import GeneratedProbesConfig, RunConfig
from entigraph.errors import InputError
from entigraph.evaluation.probes import paraphrase_probes, generate_probes, unit_spans
from entigraph.evaluation.tasks import questions_for_run
from entigraph.io import write_jsonl
from entigraph.records import Document, Entity, Mention, to_dict

DOCS = [
    Document("d-0000", "Tide station", (
        "The Quarrow Tide Station was founded by Ottoline Brask in 1881 after a long storm. "
        "The first keeper, Marit Ellery, recorded the tides on a brass drum gauge every morning. "
        "In 1903 the Saltmere Pilots' Society paid 340 pounds for a new stone tower near Hobb's Nab. "
        "Jonas Pell repaired the drum gauge in 1921 with parts sent from the Merrin Sound workshop. "
        "The station closed in 1988, when an automatic gauge replaced the brass drum gauge.")),
    Document("d-0001", "Lighthouse", (
        "The Kettle Point lighthouse was painted red by Oskar Brenn in 1931 for the harbour board. "
        "Herons nest in the salt marsh behind the lighthouse from April to June each year. "
        "Mara Velt counted 212 herons in the salt marsh during the survey of 1964. "
        "The harbour board sold the lighthouse to the Lumen Bay Trust in 1977 for 48 pounds.")),
]
NAMES = {"PERSON": ["Ottoline Brask", "Marit Ellery", "Jonas Pell", "Oskar Brenn", "Mara Velt"],
         "ORG": ["Saltmere Pilots' Society", "Lumen Bay Trust", "Quarrow Tide Station"],
         "GPE": ["Hobb's Nab", "Merrin Sound", "Kettle Point"],
         "CONCEPT": ["brass drum gauge", "stone tower", "salt marsh", "harbour board", "automatic gauge"]}


def entities() -> list[Entity]:
    out = []
    for label, names in NAMES.items():
        for name in names:
            mentions = [Mention(d.doc_id, f"{d.doc_id}:p0", m.start(), m.end(), name)
                        for d in DOCS for m in re.finditer(re.escape(name), d.text)]
            out.append(Entity(name.lower(), name, label, mentions=mentions, doc_freq=1, count=len(mentions)))
    return out


def test_targets_come_from_their_sentence_and_distractors_from_the_same_document():
    qs = generate_probes(DOCS, entities(), GeneratedProbesConfig(per_doc=10), num_options=3, seed=0)
    assert qs
    text = {d.doc_id: d.text for d in DOCS}
    for q in qs:
        m = q.meta
        assert m["generated"] and m["probe_type"] == "generated" and q.kind == "cloze"
        assert text[q.doc_id][m["start"]:m["end"]] == q.answer_text  # the target is that span of the document
        assert m["sentence"][m["span"][0]:m["span"][1]] == q.answer_text and m["sentence"] in text[q.doc_id]
        assert q.options[q.answer] == q.answer_text and len(q.options) == 3
        assert m["sentence"].startswith(q.question[:20])  # the prefix is the sentence's opening
        assert len(q.question.split()) >= 6 and q.answer_text.lower() not in q.question.lower()
        for other in q.options:
            if other != q.answer_text:
                assert other in text[q.doc_id]  # a distractor of the same document
                assert other.lower() not in q.answer_text.lower() and q.answer_text.lower() not in other.lower()
    by_kind = {q.meta["target_kind"] for q in qs}
    assert by_kind == {"name", "number", "phrase"}
    numbers = [q for q in qs if q.meta["target_kind"] == "number"]
    assert all(o.replace(",", "").isdigit() for q in numbers for o in q.options)  # numbers against numbers
    names = [q for q in qs if q.meta["target_kind"] == "name"]
    all_names = {n for label in ("PERSON", "ORG", "GPE") for n in NAMES[label]}
    assert all(set(q.options) <= all_names for q in names)  # names against names
    assert len({q.meta["unit_id"] for q in qs}) == len(qs)  # one probe per sentence


def test_generated_probes_are_seeded_and_respect_the_settings():
    a = generate_probes(DOCS, entities(), GeneratedProbesConfig(per_doc=3), 4, seed=1)
    b = generate_probes(DOCS, entities(), GeneratedProbesConfig(per_doc=3), 4, seed=1)
    assert [(q.qid, q.options) for q in a] == [(q.qid, q.options) for q in b]
    assert max(sum(q.doc_id == d.doc_id for q in a) for d in DOCS) <= 3
    only = generate_probes(DOCS, entities(), GeneratedProbesConfig(kinds=["number"]), 4, seed=1)
    assert only and {q.meta["target_kind"] for q in only} == {"number"}


def test_unit_spans_do_not_overlap():
    from entigraph.facts.units import source_units

    for u in source_units(DOCS, entities()):
        spans = unit_spans(u)
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_the_eval_stage_asks_generated_probes_when_told(tmp_path):
    cfg = RunConfig(name="g", run_dir=str(tmp_path))
    cfg.corpus.paths = [str(tmp_path / "none.txt")]
    (tmp_path / "none.txt").write_text(DOCS[0].text)
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(d) for d in DOCS])
    write_jsonl(cfg.out / "extract" / "entities.jsonl", [to_dict(e) for e in entities()])
    with pytest.raises(InputError, match="eval.probes=generated"):
        questions_for_run(cfg, DOCS)  # a txt corpus has no questions
    cfg.eval.probes = "generated"
    cfg.eval.generated.per_doc = 2
    qs, notes = questions_for_run(cfg, DOCS)
    assert len(qs) == 4 and notes["probes"] == "generated" and sum(notes["generated"]["by_kind"].values()) == 4


class Paraphraser:
    """Replies, in turn: a faithful rewrite, one that invents a name, one that drops the target."""

    def __init__(self):
        self.seen = []

    def generate(self, requests):
        out = []
        for r in requests:
            self.seen.append(r)
            target = re.search(r'with the words "(.*?)"', r.messages[0]["content"]).group(1)
            sentence = r.messages[0]["content"].split("Sentence: ")[1]
            k = len(self.seen) % 3
            if k == 1:
                words = sentence.split(target)[0].split()
                out.append(Generation(" ".join(["Indeed,"] + words) + " " + target + "."))
            elif k == 2:
                out.append(Generation(f"According to Zebediah Quux of the observatory it was {target}."))
            else:
                out.append(Generation("Something else entirely happened there long ago."))
        return out


def test_paraphrased_probes_are_kept_only_when_supported():
    qs = generate_probes(DOCS, entities(), GeneratedProbesConfig(per_doc=3), 4, seed=0)
    backend = Paraphraser()
    more, tally = paraphrase_probes(qs, backend, entities(), GeneratedProbesConfig(), seed=0)
    assert tally["asked"] == len(qs) and tally["kept"] == len(more) > 0
    assert tally["unsupported"] + tally["no_target"] + tally["short_prefix"] + tally["unchanged"] + tally["kept"] == len(qs)
    assert tally["unsupported"] > 0 and tally["no_target"] > 0
    for q in more:
        assert q.meta["probe_type"] == "generated-paraphrase" and q.meta["generated"]
        assert q.question.startswith("Indeed,") and "Zebediah" not in q.question
        assert q.options[q.answer] == q.answer_text
