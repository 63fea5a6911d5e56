"""The unit-anchored modes' tasks (synthesis/sources.py, free.py, rewrites.py, planner.py) and the
sampler's `units` strategy (feedback.py)."""

import re

import pytest
from synth_inputs import tiny_config, write_inputs

from entigraph import artifacts
from entigraph.backends.base import Generation
from entigraph.records import SynthPassage
from entigraph.synthesis.engine import Engine
from entigraph.synthesis.feedback import UnitFeedback
from entigraph.synthesis.planner import DEFAULT_STRATEGIES, parse_strategies
from entigraph.synthesis.sampler import RelationSampler, build_index
from entigraph.synthesis.sources import UnitOptions, UnitTasks
from entigraph.synthesis.store import Store
from entigraph.text import sentences


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("faithful"), "unused")
    write_inputs(cfg)
    out = cfg.out
    return artifacts.documents(out), artifacts.passages(out), artifacts.entities(out), artifacts.graph(out)


def unit_tasks(inputs, **options):
    docs, passages, ents, _ = inputs
    return UnitTasks(docs, passages, ents, UnitOptions(**{"restore": False, **options}))


def sampler(inputs, ut, modes, **kw):
    docs, passages, ents, graph = inputs
    return RelationSampler(build_index(docs, passages, ents, graph), ents, passages, modes=modes, units=ut, **kw)


def test_permute_keeps_every_unit_of_its_section_exactly_once(inputs):
    ut = unit_tasks(inputs, permutations=3, section_tokens=60)
    tasks = list(sampler(inputs, ut, ["permute"]))
    sections = {frozenset(u.unit_id for u in s.units): s for ss in ut.sections.values() for s in ss if len(s.units) > 1}
    assert len(sections) > 2 and len(tasks) == 3 * len(sections)
    copies: dict = {}
    for t in tasks:
        sec = sections[frozenset(t.unit_ids)]  # provenance: the section's units, in the permuted order
        text = ut.generation(t.task_id).text
        assert sorted(sentences(text)) == sorted(u.text for u in sec.units)  # each unit once, nothing else
        assert sentences(text) == [ut.units[ut.position[i]].text for i in t.unit_ids]
        assert set(t.passage_ids) == {pid for u in sec.units for pid in ut.unit_passages[u.unit_id]}
        copies.setdefault(sec.key, set()).add(text)
    assert all(len(texts) == 3 for texts in copies.values())  # three different orders


def test_profiles_are_the_units_their_entity_is_mentioned_in(inputs):
    docs, passages, ents, _ = inputs
    ut = unit_tasks(inputs, profile_min_units=2)
    tasks = list(sampler(inputs, ut, ["profile"]))
    expected = {}
    for e in ents:
        mentioned = {u.unit_id for u in ut.units for m in e.mentions if m.doc_id == u.doc_id and u.start <= m.start < u.end}
        if len(mentioned) >= 2:
            expected[e.name] = mentioned
    assert {t.entities[0] for t in tasks} == set(expected) and len(tasks) == len(expected)
    for t in tasks:
        assert set(t.unit_ids) == expected[t.entities[0]]
        text = ut.generation(t.task_id).text
        assert sorted(sentences(text)) == sorted(ut.units[ut.position[i]].text for i in t.unit_ids)
    mara = next(t for t in tasks if t.entities == ["Mara Velt"])  # one profile across both documents
    assert mara.doc_ids == [d.doc_id for d in docs]


def test_reading_and_qa_answers_are_spans_of_their_source_units(inputs):
    ut = unit_tasks(inputs)
    tasks = list(sampler(inputs, ut, ["reading", "qa"]))
    assert {t.mode for t in tasks} == {"reading", "qa"}
    for t in tasks:
        text = ut.generation(t.task_id).text
        source = " ".join(ut.units[ut.position[i]].text for i in t.unit_ids)
        answers = re.findall(r"^Answer: (.+?)(?:\. |$)", text, re.MULTILINE)
        assert answers and all(a in source for a in answers)
        if t.mode == "reading":
            assert text.startswith(source) and "Answer the questions based on the text above." in text


def test_strategies_are_parsed_from_numbered_lines_and_filled_with_defaults():
    plan = "Here are three strategies:\n1. Paraphrase every sentence in simple words.\n2) Draw a family tree of the people.\n- Paraphrase every sentence in simple words."
    assert parse_strategies(plan, 3) == ["Paraphrase every sentence in simple words.",
                                         "Draw a family tree of the people.", DEFAULT_STRATEGIES[0]]
    assert parse_strategies("", 2) == list(DEFAULT_STRATEGIES[:2])
    assert parse_strategies("Make flash cards of the dates\nok", 1) == ["Make flash cards of the dates"]


def test_least_covered_candidates_come_first_and_ties_keep_the_base_order(inputs):
    fb = UnitFeedback(unit_tasks(inputs), k=2)
    fb.counts[0] = fb.counts[1] = 2  # units 0 and 1 restated twice: covered
    fb.counts[2] = 1
    picks = list(fb.least_covered(iter(["a", "b", "c", "d"]), {"a": [0, 1], "b": [1, 2], "c": [3], "d": [0]}.get))
    assert picks == ["c", "b", "a", "d"]  # c uncovered; b half; a before d (tie, base order)
    assert fb.pending[1] == 2  # the picks since the last refresh count as coverage to come


def provenance(s, task):
    """The positions of a pair's or triple's source units, as the units strategy weighs them."""
    idx = next(i for i in s.index if i.doc.doc_id == task.doc_ids[0])
    return s._provenance(idx, [idx.entities.index(s.names.index(n)) for n in task.entities])


def test_units_strategy_spends_the_budget_on_units_not_yet_restated(inputs):
    curves = {}
    for strategy in ("coverage", "units"):
        ut = unit_tasks(inputs)
        s = sampler(inputs, ut, ["pair", "triple"], strategy=strategy, round_tasks=2, coverage_k=1)
        yielded = {}
        if strategy == "units":  # a store in which each passage restates exactly its task's source units
            s.feedback.lookup = lambda ids: [SynthPassage(
                i, "pair", [], yielded[i].doc_ids, yielded[i].passage_ids,
                " ".join(ut.units[p].text for p in provenance(s, yielded[i]))) for i in ids]
        covered, curve = set(), []
        for t in s:
            yielded[t.task_id] = t
            if strategy == "units":
                assert t.unit_ids == [ut.units[p].unit_id for p in provenance(s, t)]  # provenance travels with it
            covered |= set(provenance(s, t))
            curve.append(len(covered))
            if len(curve) == 12:
                break
        curves[strategy] = curve
    n = len(ut.units)
    assert all(u >= c for u, c in zip(curves["units"], curves["coverage"])), curves  # never behind
    assert curves["units"].index(n) < curves["coverage"].index(n), curves  # every unit reached sooner


class EchoBackend:
    """Writes the first sentence of the prompt's context (so the passages restate source units);
    raises after `fail_after` calls, like a crash."""

    name, model = "echo", "echo-model"

    def __init__(self, fail_after=None):
        self.fail_after, self.calls = fail_after, 0

    def generate(self, requests):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("crash")
        out = []
        for r in requests:
            context = r.messages[-1]["content"].split("\n\n")[1]
            out.append(Generation(f"{sentences(context)[0]} Seed {r.seed % 97}.", 10, 8, "stop"))
        return out

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


def test_units_strategy_resumed_after_a_crash_equals_an_uninterrupted_run(tmp_path, inputs):
    # no generator-free mode here: it would restate every unit at once and leave nothing to steer
    cfg = tiny_config(tmp_path, "echo", max_passages=30, batch_size=2, strategy="units", modes=["pair", "explain"])
    cfg.synthesis.coverage_k = 2
    args = inputs

    def run(store_path, backend):
        with Store(store_path) as store:
            return Engine(cfg, backend, *args).run(store, progress=False)

    run(tmp_path / "ref.sqlite", EchoBackend())
    with pytest.raises(RuntimeError, match="crash"):
        run(tmp_path / "crash.sqlite", EchoBackend(fail_after=10))
    with Store(tmp_path / "crash.sqlite") as store:
        assert 0 < store.totals()["ok"] < 30
    summary = run(tmp_path / "crash.sqlite", EchoBackend())
    assert summary["resumed"] > 0
    rows = {}
    for name in ("ref", "crash"):
        with Store(tmp_path / f"{name}.sqlite") as store:
            rows[name] = [(p.task_id, p.seq, p.mode, p.text, tuple(p.unit_ids)) for p in store.passages(None)]
    assert len(rows["ref"]) == 30 and rows["crash"] == rows["ref"]
    coverage_order = tiny_config(tmp_path / "c", "echo", max_passages=30, batch_size=2, modes=["pair", "explain"])
    with Store(tmp_path / "cov.sqlite") as store:
        Engine(coverage_order, EchoBackend(), *args).run(store, progress=False)
        assert [p.task_id for p in store.passages(None)] != [r[0] for r in rows["ref"]]  # the counts did steer it
