"""Generator-free synthesis: new forms of the source built from its own sentences, so nothing is invented.

Every function returns ``SynthText`` records that name the source units they are built from
(provenance), and is deterministic given its seed:

- ``permute``: the units of a document or section in a new order;
- ``entity_profile``: every unit that mentions an entity (the graph's mentions), in a new order;
- ``mine_reading_tasks``: a document followed by cloze and wh-questions mined from it
  (AdaptLLM-style reading comprehension), answers being spans of the source;
- ``grounded_qa``: the same questions as stand-alone pairs, each answer followed by its sentence;
- ``relation_units``: for a pair or triple of entities, the units that mention two or more of them
  (co-mentions) first, then each one's own units;
- ``walk_units``: a path A-B-C through the units, each one mentioning the entity the previous one
  led to and a new one, other documents first (Synthesize-on-Graph's cross-document walks).

Reordered sentences lose the antecedents of their short names and pronouns, so ``Restorer`` writes
the full name where the entities tell it ("Leon" -> "Snowstorm Leon", "Under his leadership" ->
"Under Alex Gorsky's leadership" when the previous sentence names one person).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..records import Entity
from ..text import FUNCTION_WORDS, words
from .units import CONCEPT, SourceUnit

PERSON_LABELS = {"PERSON", "MISC"}  # MISC: proper nouns of unknown type, most often people
_PRONOUN = re.compile(r"\b(he|she|him|his|her)\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_COUNT = re.compile(r"\b\d[\d,.]*\b")


@dataclass
class SynthText:
    text: str
    mode: str  # permute | profile | reading | qa
    unit_ids: list[str]  # provenance: the source units it is built from
    doc_ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def by_document(units: Iterable[SourceUnit]) -> dict[str, list[SourceUnit]]:
    """Units grouped per document, in reading order."""
    docs: dict[str, list[SourceUnit]] = defaultdict(list)
    for u in units:
        docs[u.doc_id].append(u)
    return {d: sorted(us, key=lambda u: u.index) for d, us in docs.items()}


def _third_word_end(text: str) -> int:
    ends = [m.end() for m in re.finditer(r"\w+", text)][:3]
    return ends[-1] if ends else 0


def _kind(label: str) -> str | None:
    """Which pronouns can stand for an entity with this label."""
    if label in PERSON_LABELS:
        return "person"
    return None if label == CONCEPT else "thing"


class Restorer:
    """Rewrites a unit so that it reads alone: short names to full names, and a pronoun with no
    antecedent in its own sentence to the one entity of its kind the previous sentence names."""

    def __init__(self, units: Iterable[SourceUnit], entities: Iterable[Entity]):
        self.by_id = {e.entity_id: e for e in entities}
        self.at = {(u.doc_id, u.index): u for u in units}

    def antecedent(self, unit: SourceUnit, kind: str) -> Entity | None:
        prev = self.at.get((unit.doc_id, unit.index - 1))
        if prev is None:
            return None
        ids = {m.entity_id for m in prev.mentions if _kind(m.label) == kind and m.entity_id in self.by_id}
        return self.by_id[ids.pop()] if len(ids) == 1 else None

    def pronoun_target(self, unit: SourceUnit) -> tuple[re.Match, Entity] | None:
        """A he/she/his/her among the first three words of the unit, with no mention before it,
        when the previous unit names exactly one person. Only these: measured on docs 0-9, "it"
        and "its", and pronouns later in a sentence, mostly refer to something in that sentence."""
        m = _PRONOUN.search(unit.text, 0, _third_word_end(unit.text))
        if not m or any(x.start - unit.start < m.start() for x in unit.mentions):
            return None
        ent = self.antecedent(unit, "person")
        return (m, ent) if ent else None

    def edits(self, unit: SourceUnit) -> list[tuple[int, int, str]]:
        """(start, end, replacement), offsets relative to the unit, in order, not overlapping."""
        edits: list[tuple[int, int, str]] = []
        end = -1
        for x in unit.mentions:
            ent = self.by_id.get(x.entity_id)
            a, b = x.start - unit.start, x.end - unit.start
            if ent is None or a < end:
                continue
            short, full = words(x.text), words(ent.name)
            if len(short) < len(full) and set(short) <= set(full):
                edits.append((a, b, ent.name))
                end = b
        hit = self.pronoun_target(unit)
        if hit:
            m, ent = hit
            word = m.group().lower()
            nxt = re.match(r"\s+(\w+)", unit.text[m.end():])
            possessive = word == "his" or (word == "her" and nxt and nxt.group(1).lower() not in FUNCTION_WORDS)
            if not any(a < m.end() and m.start() < b for a, b, _ in edits):
                edits.append((m.start(), m.end(), ent.name + ("'s" if possessive else "")))
        return sorted(edits)

    def __call__(self, unit: SourceUnit) -> str:
        return apply_edits(unit.text, self.edits(unit))


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    for a, b, rep in sorted(edits, reverse=True):
        text = text[:a] + rep + text[b:]
    return text


def _text(unit: SourceUnit, restorer: Restorer | None) -> str:
    return restorer(unit) if restorer else unit.text


def permute(units: list[SourceUnit], seed: int, restorer: Restorer | None = None) -> SynthText:
    """The units (a document or a section) in a seeded new order; every unit exactly once."""
    order = list(units)
    random.Random(seed).shuffle(order)
    if len(order) > 1 and order == list(units):  # a permutation that changes nothing teaches nothing new
        order = order[1:] + order[:1]
    return SynthText(" ".join(_text(u, restorer) for u in order), "permute",
                     [u.unit_id for u in order], sorted({u.doc_id for u in order}))


def profile_units(entity: Entity, units: Iterable[SourceUnit], restorer: Restorer | None = None) -> list[SourceUnit]:
    """The entity's provenance: units that mention it, plus (with a restorer) units whose opening
    pronoun resolves to it."""
    out = []
    for u in units:
        if entity.entity_id in u.entities:
            out.append(u)
        elif restorer:
            hit = restorer.pronoun_target(u)
            if hit and hit[1].entity_id == entity.entity_id:
                out.append(u)
    return out


def entity_profile(entity: Entity, units: Iterable[SourceUnit], seed: int,
                   restorer: Restorer | None = None) -> SynthText | None:
    """Every source unit about the entity, in a seeded order, names restored; None when none."""
    chosen = profile_units(entity, units, restorer)
    if not chosen:
        return None
    random.Random(seed).shuffle(chosen)
    return SynthText(" ".join(_text(u, restorer) for u in chosen), "profile", [u.unit_id for u in chosen],
                     sorted({u.doc_id for u in chosen}), {"entity": entity.entity_id, "name": entity.name})


# ---------------------------------------------------------------------------------------------
# Reading comprehension (AdaptLLM-style): questions whose answers are spans of the source


@dataclass
class ReadingTask:
    kind: str  # cloze | who | what | when | where | how many
    question: str
    answer: str  # a span of the source unit
    unit_id: str
    start: int  # the answer's character offsets into Document.text
    end: int


# Only labels NER gets mostly right get a specific wh-word; "what" reads correctly for any other.
_WH = {"PERSON": "who", "GPE": "which place", "LOC": "which place"}


def _spans(unit: SourceUnit) -> list[tuple[int, int, str]]:
    """Answer candidates (offsets relative to the unit, wh-word): named mentions, years, counts."""
    out = [(m.start - unit.start, m.end - unit.start, _WH.get(m.label, "what"))
           for m in unit.mentions if m.label != CONCEPT]
    for m in _COUNT.finditer(unit.text):
        year = _YEAR.fullmatch(m.group())
        out.append((m.start(), m.end(), "what year" if year else "how many"))
    taken: list[tuple[int, int, str]] = []
    for a, b, wh in sorted(out, key=lambda s: (s[0], -s[1])):
        if not any(a < y and x < b for x, y, _ in taken):
            taken.append((a, b, wh))
    return taken


def _question(text: str, a: int, b: int, wh: str) -> tuple[str, str]:
    """(question, kind): the span replaced by its wh-word; at the start of the sentence the
    appositive after it goes too ("Alex Gorsky, a renowned mineralogist, was ..." -> "Who was ...?")."""
    before, after = text[:a], text[b:]
    if re.match(r"\.(?=,|\s+[a-z0-9])", after):  # "Zaronix Ltd. employs": the period was the name's
        after = after[1:]
    if wh.startswith(("what", "which")):  # "founded the Quarrow Trust" -> "founded what"
        before = re.sub(r"(^|\s)the\s+$", r"\1", before, flags=re.IGNORECASE)
    prep = re.search(r"(?:^|\s)(?:in|at)\s+$", before, re.IGNORECASE)
    if prep and wh in ("which place", "what year"):
        before = before[:prep.start()] + (" " if prep.start() else "")  # "in 2017" -> "when"
        wh = "when" if wh == "what year" else "where"
    if not before.strip(" \"'“‘("):
        appositive = re.match(r",[^,]{1,80},\s*", after)
        if appositive:
            after = " " + after[appositive.end():]
        wh = wh[:1].upper() + wh[1:]
    question = (before + wh + after).strip()
    question = re.sub(r"[.!]?[\"'”’)]*$", "", question).rstrip() + "?"
    return re.sub(r"\s+", " ", question), wh.split()[0].lower() if wh.lower() != "how many" else "how many"


def reading_tasks(unit: SourceUnit, restorer: Restorer | None = None) -> list[ReadingTask]:
    """Every cloze and wh-question the unit yields, answers being spans of it (a restored short
    name answers with the full name)."""
    edits = restorer.edits(unit) if restorer else []
    text = apply_edits(unit.text, edits)
    tasks = []
    for a, b, wh in _spans(unit):
        inside = [e for e in edits if e[0] <= a and b <= e[1]]
        if any(x < b and a < y for x, y, _ in edits) and not inside:
            continue  # the span straddles an edit
        shift = sum(len(rep) - (y - x) for x, y, rep in edits if y <= a)
        pos = a + shift
        answer = inside[0][2] if inside else unit.text[a:b]
        if inside:
            pos = inside[0][0] + shift
        q, kind = _question(text, pos, pos + len(answer), wh)
        start, end = unit.start + a, unit.start + b
        tasks.append(ReadingTask(kind, q, answer, unit.unit_id, start, end))
        tail = text[pos + len(answer):]
        blank = text[:pos] + "____" + (tail[1:] if re.match(r"\.(?=,|\s+[a-z0-9])", tail) else tail)
        tasks.append(ReadingTask("cloze", blank, answer, unit.unit_id, start, end))
    return tasks


def _pick(tasks: list[ReadingTask], per_unit: int, rng: random.Random) -> list[ReadingTask]:
    """At most `per_unit` tasks of a unit, with different answers, questions before clozes."""
    rng.shuffle(tasks)
    tasks.sort(key=lambda t: t.kind == "cloze")
    out, answers = [], set()
    for t in tasks:
        if t.answer not in answers and len(out) < per_unit:
            out.append(t)
            answers.add(t.answer)
    return out


def _render(t: ReadingTask) -> str:
    if t.kind == "cloze":
        return f"Fill in the blank: {t.question}\nAnswer: {t.answer}"
    return f"Question: {t.question}\nAnswer: {t.answer}"


def mine_reading_tasks(units: list[SourceUnit], seed: int, per_unit: int = 2,
                       restorer: Restorer | None = None) -> list[SynthText]:
    """Per document: its text, then questions on it (AdaptLLM's reading-comprehension format)."""
    rng = random.Random(seed)
    out = []
    for doc_id, us in by_document(units).items():
        tasks = [t for u in us for t in _pick(reading_tasks(u, restorer), per_unit, rng)]
        if not tasks:
            continue
        rng.shuffle(tasks)
        body = " ".join(u.text for u in us)
        text = body + "\n\nAnswer the questions based on the text above.\n\n" + "\n\n".join(_render(t) for t in tasks)
        out.append(SynthText(text, "reading", [u.unit_id for u in us], [doc_id],
                             {"tasks": [t.__dict__ for t in tasks]}))
    return out


def grounded_qa(units: list[SourceUnit], seed: int, per_unit: int = 1,
                restorer: Restorer | None = None) -> list[SynthText]:
    """Stand-alone question-answer pairs; each answer (a source span) is followed by the source
    sentence that states it, so the pair teaches the fact and not only its question."""
    rng = random.Random(seed)
    out = []
    for u in units:
        for t in _pick([t for t in reading_tasks(u, restorer) if t.kind != "cloze"], per_unit, rng):
            text = f"Question: {t.question}\nAnswer: {t.answer}. {_text(u, restorer)}"
            out.append(SynthText(text, "qa", [u.unit_id], [u.doc_id], {"task": t.__dict__}))
    return out


# ---------------------------------------------------------------------------------------------
# Relations between entities: co-mentions and walks along them, every sentence the source's own


class MentionIndex:
    """Units per entity (the extractor's mentions), in corpus order. Entities in `skip` (common-noun
    concepts: "testament", "history") link nothing: a walk through "stands as a testament to" would
    chain unrelated facts."""

    def __init__(self, units: Iterable[SourceUnit], skip: Iterable[str] = ()):
        self.units = list(units)
        self.skip = set(skip)
        self.of: dict[str, list[int]] = defaultdict(list)
        self.entities: list[list[str]] = []  # per unit: the entities it links
        for i, u in enumerate(self.units):
            linked = [e for e in dict.fromkeys(u.entities) if e not in self.skip]
            self.entities.append(linked)
            for eid in linked:
                self.of[eid].append(i)


def relation_units(entity_ids: list[str], index: MentionIndex, max_units: int) -> list[SourceUnit]:
    """The units a passage about these entities is made of, at most `max_units`: those that mention
    two or more of them first (most of them first, then reading order), then each entity's own units
    (taken in turns so that each gets some, given grouped per entity in reading order). [] when no
    unit mentions two of them: the entities are not related in the source."""
    ids = list(dict.fromkeys(entity_ids))
    want = set(ids)
    if want & index.skip:
        return []
    shared = lambda i: len(want & set(index.entities[i]))  # noqa: E731
    co = sorted({i for e in ids for i in index.of.get(e, []) if shared(i) >= 2}, key=lambda i: (-shared(i), i))
    if not co:
        return []
    chosen, co_set = co[:max_units], set(co)
    own = [[i for i in index.of.get(e, []) if i not in co_set] for e in ids]
    taken: list[list[int]] = [[] for _ in ids]
    left = max_units - len(chosen)
    while left > 0 and any(own):
        for k, pool in enumerate(own):
            if pool and left > 0:
                taken[k].append(pool.pop(0))
                left -= 1
    return [index.units[i] for i in chosen + [i for group in taken for i in group]]


def walk_units(start: str, home_doc: str, index: MentionIndex, length: int,
               rng: random.Random) -> tuple[list[SourceUnit], list[str]]:
    """A walk from entity `start` through `length` - 1 units: the first in `home_doc`, each next one
    mentioning the entity the previous one led to and an entity not yet on the path. A unit of a
    document not yet on the path is preferred (the walk crosses documents where the source lets
    it), then one whose new entity can lead further. Returns (units, entity ids on the path)."""
    path, chosen, docs, used = [start], [], set(), set()
    for hop in range(length - 1):
        options = [(i, f) for i in index.of.get(path[-1], []) if i not in used
                   for f in index.entities[i] if f not in path]
        if hop == 0:
            options = [(i, f) for i, f in options if index.units[i].doc_id == home_doc]
        if not options:
            break
        pool = [o for o in options if index.units[o[0]].doc_id not in docs] or options
        if hop < length - 2:  # a new entity that can lead on, where there is one
            onward = [(i, f) for i, f in pool if any(j != i and any(g not in path and g != f for g in index.entities[j])
                                                      for j in index.of.get(f, []))]
            pool = onward or pool
        i, f = rng.choice(pool)
        chosen.append(i)
        used.add(i)
        docs.add(index.units[i].doc_id)
        path.append(f)
    return [index.units[i] for i in chosen], path


def chain(units: list[SourceUnit], mode: str, restorer: Restorer | None = None) -> SynthText:
    """The units in the given order, each made to read alone: a relation passage or a walk."""
    return SynthText(" ".join(_text(u, restorer) for u in units), mode, [u.unit_id for u in units],
                     sorted({u.doc_id for u in units}))
