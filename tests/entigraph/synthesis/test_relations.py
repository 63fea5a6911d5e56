"""The generator-free relation and walk modes: every sentence the source's own, with provenance,
the same tasks for the same seed; over random tiny corpora and through the synthesize stage."""

import random
import re

import pytest
from synth_inputs import tiny_config, write_inputs

from entigraph import artifacts
from entigraph.corpus import split_passages
from entigraph.records import Document, Entity, Mention
from entigraph.stages import synthesize as synthesis
from entigraph.synthesis.sampler import RelationSampler, build_index
from entigraph.synthesis.sources import RelationOptions, UnitOptions, UnitTasks
from entigraph.text import sentences

NAMES = ["Ava Lind", "Bo Carrow", "Cyrus Dunn", "Dee Moss", "Eli Fenn", "Fay Gore", "Quarrow Trust", "Kettle Point"]
PATTERNS = ["{0} met {1} in {y}.", "{0} sold the mill to {1}.", "{0}, {1} and {2} signed the pact in {y}.",
            "{0} mapped the marshes.", "The river flooded in {y}.", "{0} never spoke of {1} again."]


def random_corpus(rng: random.Random) -> tuple[list[Document], list, list[Entity]]:
    """2-4 documents of 3-9 sentences naming 2-3 entities of a small cast each (some shared)."""
    docs = []
    for d in range(rng.randint(2, 4)):
        cast = rng.sample(NAMES, rng.randint(3, 5))
        lines = [rng.choice(PATTERNS).format(*rng.sample(cast, 3), y=rng.randint(1800, 1999))
                 for _ in range(rng.randint(3, 9))]
        docs.append(Document(f"d{d}", f"Doc {d}", " ".join(lines), "test"))
    passages = [p for doc in docs for p in split_passages(doc, rng.choice([12, 30, 200]), 4)]
    entities = []
    for name in NAMES:
        ent = Entity(re.sub(r"\W+", "-", name.lower()), name, "PERSON")
        for doc in docs:
            for m in re.finditer(re.escape(name), doc.text):
                pid = next(p.passage_id for p in passages if p.doc_id == doc.doc_id and p.start <= m.start() < p.end)
                ent.mentions.append(Mention(doc.doc_id, pid, m.start(), m.end(), name))
        if ent.mentions:
            entities.append(ent)
    entities.sort(key=lambda e: -len(e.mentions))
    return docs, passages, entities


def draw(docs, passages, entities, seed=0, restore=False, **relations):
    units = UnitTasks(docs, passages, entities, UnitOptions(restore=restore), seed, RelationOptions(**relations))
    sampler = RelationSampler(build_index(docs, passages, entities), entities, passages,
                              modes=["relation", "walk"], units=units, seed=seed)
    tasks = list(sampler)
    return units, tasks, [units.generation(t.task_id).text for t in tasks]


@pytest.mark.parametrize("case", range(40))
def test_relation_and_walk_passages_are_corpus_sentences_with_provenance(case):
    rng = random.Random(case)
    docs, passages, entities = random_corpus(rng)
    corpus_sentences = {s for d in docs for s in sentences(d.text)}
    text_of = {d.doc_id: d.text for d in docs}
    by_name = {e.name: e.entity_id for e in entities}
    n_units, walk_length = rng.randint(1, 6), rng.randint(2, 4)
    units, tasks, texts = draw(docs, passages, entities, seed=case, relation_units=n_units, walk_length=walk_length)
    for task, text in zip(tasks, texts):
        provenance = [units.unit(u) for u in task.unit_ids]
        assert provenance and len(set(task.unit_ids)) == len(task.unit_ids)
        assert all(text_of[u.doc_id][u.start:u.end] == u.text for u in provenance)  # real offsets
        assert text == " ".join(u.text for u in provenance)  # the units, in the provenance's order
        assert set(sentences(text)) <= corpus_sentences  # nothing that is not in the corpus
        assert set(task.doc_ids) == {u.doc_id for u in provenance}
        assert set(task.passage_ids) == {p for u in provenance for p in units.unit_passages[u.unit_id]}
        ids = [by_name[n] for n in task.entities]
        if task.mode == "relation":
            assert 2 <= len(ids) <= 3 and len(provenance) <= n_units
            assert len(set(ids) & set(provenance[0].entities)) >= 2  # a co-mention first
            assert all(set(ids) & set(u.entities) for u in provenance)  # each about one of them at least
        else:
            assert len(ids) == len(provenance) + 1 <= walk_length
            assert all({ids[k], ids[k + 1]} <= set(u.entities) for k, u in enumerate(provenance))  # a chain
            assert len(set(ids)) == len(ids)
    assert len({t.task_id for t in tasks}) == len(tasks)  # a tuple met in two documents is drawn once
    again = draw(docs, passages, entities, seed=case, relation_units=n_units, walk_length=walk_length)
    assert [t.task_id for t in again[1]] == [t.task_id for t in tasks] and again[2] == texts  # same seed, same tasks


def test_walks_cross_documents_and_names_are_restored():
    """Over the random corpora, some walks reach a second document; with restore_names, each
    sentence is its unit made to read alone (the restorer's text), nothing else."""
    crossed = 0
    for case in range(40):
        docs, passages, entities = random_corpus(random.Random(case))
        units, tasks, texts = draw(docs, passages, entities, seed=case, restore=True)
        crossed += sum(t.mode == "walk" and len(t.doc_ids) > 1 for t in tasks)
        for t, text in zip(tasks, texts):
            assert text == " ".join(units.restorer(units.unit(u)) for u in t.unit_ids)
    assert crossed > 10


def test_the_seed_picks_the_walks():
    docs, passages, entities = random_corpus(random.Random(3))
    walks = {seed: [tuple(t.unit_ids) for t in draw(docs, passages, entities, seed=seed)[1] if t.mode == "walk"]
             for seed in range(6)}
    assert len({tuple(w) for w in walks.values()}) > 1


def test_the_stage_writes_relation_and_walk_passages_without_a_model(tmp_path, monkeypatch):
    monkeypatch.setattr(synthesis, "run_backend", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = tiny_config(tmp_path, "no-such-model", max_passages=None, modes=["relation", "walk"],
                      per_doc={"relation": 3})
    write_inputs(cfg)
    summary = synthesis.run(cfg, progress=False)
    assert summary["backend"] == "none" and set(summary["per_mode"]) == {"relation", "walk"}
    assert summary["per_mode"]["relation"]["passages"] <= 3 * 2
    rows = artifacts.synthetic(cfg.out)
    assert all(r.unit_ids and r.passage_ids and r.text for r in rows)
    assert all(len(r.entities) == 3 and len(r.unit_ids) == 2 for r in rows if r.mode == "walk")  # A-B-C
    assert synthesis.run(cfg, progress=False)["resumed"] == len(rows)
