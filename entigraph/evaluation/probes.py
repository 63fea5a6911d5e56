"""Generated probes: cloze questions mined from the corpus itself, for corpora that come without questions.

A probe is a sentence of a document cut before one of its spans: a name (a named mention of the
extract stage), a number, or a noun phrase (a concept mention). The model continues the prefix; the
options are the target and distractors of the same kind taken from the same document (the honest
variant: same topic, so the prefix's words do not give the answer away), scored like Fictional
Knowledge's probes. Everything is seeded, so the same documents give the same probes.

    generate_probes(documents, entities, cfg.eval.generated, num_options, seed)

With ``paraphrase``, each probe's sentence is also rewritten through the backend; a rewrite is kept
only when it still ends in the target with a long enough prefix and the support check
(entigraph/facts/support.py) finds every name, number and most content words of it in the source
sentence. Every generated probe carries ``meta["generated"] = True`` and a probe type
``generated`` (or ``generated-paraphrase``), which every report prints as such.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from entigraph.facts.support import SupportGate
from entigraph.facts.transforms import Restorer, apply_edits
from entigraph.facts.units import CONCEPT, SourceUnit, name_forms, source_units
from entigraph.records import Document, Entity, Question

PROBE_TYPE = "generated"
PARAPHRASE_TYPE = "generated-paraphrase"
_COUNT = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
_YEAR = re.compile(r"1[0-9]{3}|20[0-9]{2}")


@dataclass(frozen=True)
class Span:
    start: int  # offsets relative to the unit's text
    end: int
    kind: str  # name | number | phrase
    group: str  # the finer kind distractors should share: the entity label, year or count
    text: str


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _seeded(seed: int, key: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16))


def unit_spans(unit: SourceUnit) -> list[Span]:
    """Answer candidates of a sentence, not overlapping (earlier and longer spans first)."""
    found = []
    for m in unit.mentions:
        a, b = m.start - unit.start, m.end - unit.start
        if m.label == CONCEPT:
            found.append(Span(a, b, "phrase", "phrase", unit.text[a:b]))
        else:
            found.append(Span(a, b, "name", m.label, unit.text[a:b]))
    for m in _COUNT.finditer(unit.text):
        value = m.group().rstrip(".,")
        found.append(Span(m.start(), m.start() + len(value), "number",
                          "year" if _YEAR.fullmatch(value) else "count", value))
    taken: list[Span] = []
    for s in sorted(found, key=lambda s: (s.start, -s.end)):
        if s.text.strip() and not any(s.start < t.end and t.start < s.end for t in taken):
            taken.append(s)
    return taken


def _prefix(unit: SourceUnit, span: Span, restorer: Restorer | None) -> str:
    """The sentence up to the span, short names and an opening pronoun restored."""
    text = unit.text[: span.start]
    if restorer is not None:
        text = apply_edits(text, [e for e in restorer.edits(unit) if e[1] <= span.start])
    return text.rstrip()


def _distractors(target: Span, pool: dict[str, dict[str, list[str]]], k: int, rng: random.Random) -> list[str]:
    """k other spans of the same document: of the same group (entity label, year or count) when
    there are enough, else of the same kind; none equal to, inside, or containing the target."""
    t = _norm(target.text)

    def ok(x: str) -> bool:
        n = _norm(x)
        return n != t and n not in t and t not in n

    same_group = [x for x in pool[target.kind].get(target.group, []) if ok(x)]
    if len(same_group) >= k:
        return rng.sample(same_group, k)
    same_kind = list(dict.fromkeys(x for xs in pool[target.kind].values() for x in xs if ok(x)))
    return rng.sample(same_kind, k) if len(same_kind) >= k else []


def generate_probes(documents: Sequence[Document], entities: Iterable[Entity], settings, num_options: int = 4,
                    seed: int = 0) -> list[Question]:
    """Up to ``settings.per_doc`` cloze probes per document, at most one per sentence, the kinds
    (``settings.kinds``) taken in turn so that names, numbers and phrases are all asked."""
    entities = list(entities)
    units = source_units(list(documents), entities)
    restorer = Restorer(units, entities) if entities else None
    by_doc: dict[str, list[SourceUnit]] = defaultdict(list)
    for u in units:
        by_doc[u.doc_id].append(u)
    kinds = list(settings.kinds)
    questions = []
    for doc in documents:
        doc_units = by_doc.get(doc.doc_id, [])
        spans = {u.unit_id: unit_spans(u) for u in doc_units}
        pool: dict[str, dict[str, list[str]]] = {k: defaultdict(list) for k in ("name", "number", "phrase")}
        seen: set[tuple[str, str]] = set()
        for u in doc_units:
            for s in spans[u.unit_id]:
                key = (s.kind, _norm(s.text))
                if key not in seen:
                    seen.add(key)
                    pool[s.kind][s.group].append(s.text)
        candidates: dict[str, list[tuple[SourceUnit, Span, str]]] = defaultdict(list)
        for u in doc_units:
            for s in spans[u.unit_id]:
                if s.kind not in kinds:
                    continue
                prefix = _prefix(u, s, restorer)
                if len(prefix.split()) < settings.min_prefix_words or _norm(s.text) in _norm(prefix):
                    continue  # too little to go on, or the prefix gives the answer away
                candidates[s.kind].append((u, s, prefix))
        rng = _seeded(seed, doc.doc_id)
        for k in kinds:
            rng.shuffle(candidates[k])
        used_units: set[str] = set()
        picked = 0
        while picked < settings.per_doc and any(candidates[k] for k in kinds):
            for k in kinds:
                if picked >= settings.per_doc:
                    break
                while candidates[k]:
                    u, s, prefix = candidates[k].pop()
                    if u.unit_id in used_units:
                        continue
                    qid = f"{doc.doc_id}:g{u.index}-{s.start}"
                    qrng = _seeded(seed, qid)
                    others = _distractors(s, pool, num_options - 1, qrng)
                    if not others:
                        continue
                    options = others + [s.text]
                    qrng.shuffle(options)
                    questions.append(Question(
                        qid, doc.doc_id, prefix, options, options.index(s.text), s.text, "cloze",
                        {"probe_type": PROBE_TYPE, "generated": True, "target_kind": s.kind, "group": s.group,
                         "unit_id": u.unit_id, "sentence": u.text, "span": [s.start, s.end], "start": u.start + s.start,
                         "end": u.start + s.end, "distractors": "same_doc", "source": "generated"}))
                    used_units.add(u.unit_id)
                    picked += 1
                    break
    return questions


# ---------------------------------------------------------------------------------------------
# Paraphrased probes: the sentence rewritten through the backend, kept only when supported

PARAPHRASE_PROMPT = (
    "Rewrite the sentence below in different words. Keep every fact, name and number, and end your "
    "sentence with the words \"{target}\". Reply with the rewritten sentence only.\n\nSentence: {sentence}"
)


def paraphrase_probes(questions: Sequence[Question], backend, entities: Iterable[Entity], settings,
                      seed: int = 0, batch_size: int = 16) -> tuple[list[Question], dict]:
    """Paraphrased twins of generated probes, and a tally of what was asked, kept and why not."""
    from entigraph.backends import Request
    from entigraph.config import SamplingConfig

    gate = SupportGate(forms=name_forms(entities))
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=96)
    source = [q for q in questions if q.meta.get("generated") and q.meta.get("probe_type") == PROBE_TYPE]
    requests = [Request([{"role": "user", "content": PARAPHRASE_PROMPT.format(
        target=q.answer_text, sentence=q.question + " " + q.answer_text + _tail(q))}], sampling, seed=seed)
        for q in source]
    replies = []
    for i in range(0, len(requests), batch_size):
        replies += [g.text for g in backend.generate(requests[i: i + batch_size])]
    out, tally = [], {"asked": len(source), "kept": 0, "no_target": 0, "short_prefix": 0, "unchanged": 0,
                      "unsupported": 0}
    for q, reply in zip(source, replies):
        sentence = " ".join(reply.strip().split("\n")[0].split())
        at = sentence.rfind(q.answer_text)
        if at < 0:
            tally["no_target"] += 1
            continue
        prefix = sentence[:at].rstrip()
        if len(prefix.split()) < settings.min_prefix_words:
            tally["short_prefix"] += 1
            continue
        if _norm(prefix) == _norm(q.question):
            tally["unchanged"] += 1
            continue
        if gate.check(prefix + " " + q.answer_text, q.meta["sentence"]) is not None:
            tally["unsupported"] += 1
            continue
        tally["kept"] += 1
        out.append(Question(f"{q.qid}:p", q.doc_id, prefix, list(q.options), q.answer, q.answer_text, "cloze",
                            {**q.meta, "probe_type": PARAPHRASE_TYPE, "paraphrase_of": q.qid}))
    return out, tally


def _tail(q: Question) -> str:
    """The rest of the source sentence after the target (the rewrite must keep its facts too)."""
    sentence, span = q.meta.get("sentence", ""), q.meta.get("span")
    return sentence[span[1]:] if sentence and span else ""
