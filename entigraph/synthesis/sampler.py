"""Relation sampler: which documents, entity pairs and triples (and passages) the LLM writes about.

EntiGraph works per document: a document's entities are sampled together, and the context given
with a pair or triple is the document itself or (``synthesis.context: local``) the passages where
those entities occur. Nothing here materialises the space of triples (10,000 entities in one
document have 1.7e11): tuples are drawn lazily, so memory grows with what was yielded, not with
what could be.

Strategies (``synthesis.strategy``):
- ``exhaustive``: the paper's order: every summary, then all pairs, then triples; pairs and triples
  come in a seeded shuffled order (a bijective permutation of their index space), documents in turn.
- ``coverage``: every entity of a document is paired once (with its strongest co-occurring
  partner) before any entity repeats, then every co-occurring pair gets a turn (strongest first),
  and every co-occurring pair grows one triple; only then the rest of the space, shuffled.
  Documents and modes take turns, so a small budget still spreads over everything.
- ``weighted``: pairs and triples drawn in proportion to co-occurrence (edge weight), without
  replacement; entities that never co-occur are never drawn together.
- ``units``: ``coverage``'s order, reweighed by source-unit coverage: each pick of a pair, triple or
  rewrite window is, among the next candidates, the one whose source units (the sentences of its
  context that mention its entities; a window's sentences) the passages generated so far restate
  least (``feedback.UnitFeedback``). The counts are read from the store only at multiples of
  ``round_tasks`` (the engine's window), when everything yielded before has been committed, so a
  resumed run makes the same picks as an uninterrupted one.

The modes anchored in source units (generator-free, rewrites, Active Reading) take their tasks
from ``sources.UnitTasks``; ``relation`` takes each document's co-occurring pairs and the triples
they grow from here (whatever the strategy), ``walk`` starts a walk at each of its entities; a
relation or walk met again in a later document is not drawn twice; ``per_doc`` caps any mode's tasks per document.

Every task id hashes what determines its output (mode, entities, documents, context passages and
the per-mode ``salt``: template version, model, sampling, seed), so a resumed run recognises done work.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from itertools import count, islice
from typing import Any, Iterable, Iterator

from ..records import Document, Entity, Passage, SynthTask
from .feedback import UnitFeedback
from .ids import task_id
from ..modes import UNIT_MODES
from .sources import UnitTask, UnitTasks

STRATEGIES = ("exhaustive", "coverage", "weighted", "units")
SUMMARY_ENTITIES = 3  # entities named in a summary prompt
_M64 = (1 << 64) - 1


# -- lazy shuffles of the pair / triple index space -------------------------------------------


def _mix64(z: int) -> int:
    """splitmix64's finaliser: a cheap, well-mixed round function."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class Permutation:
    """A seeded bijection of range(n) in O(1) memory: a 4-round Feistel network on the smallest
    even-bit domain >= n, with cycle walking back into range (at most ~4 steps on average)."""

    def __init__(self, n: int, seed: str) -> None:
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        root = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
        self.keys = [_mix64(root + r) for r in range(4)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        x = i
        while True:
            left, right = x >> self.half, x & self.mask
            for k in self.keys:
                left, right = right, left ^ (_mix64(right ^ k) & self.mask)
            x = (left << self.half) | right
            if x < self.n:
                return x

    def __iter__(self) -> Iterator[int]:
        return (self[i] for i in range(self.n))


def unrank_pair(i: int) -> tuple[int, int]:
    """The i-th 2-subset of the naturals in colex order: (a, b) with a < b."""
    b = (1 + math.isqrt(1 + 8 * i)) // 2
    while b * (b - 1) // 2 > i:
        b -= 1
    while (b + 1) * b // 2 <= i:
        b += 1
    return i - b * (b - 1) // 2, b


def unrank_triple(i: int) -> tuple[int, int, int]:
    """The i-th 3-subset in colex order: (a, b, c) with a < b < c."""
    c = max(2, int(round((6 * i) ** (1 / 3))))
    while c > 2 and math.comb(c, 3) > i:
        c -= 1
    while math.comb(c + 1, 3) <= i:
        c += 1
    a, b = unrank_pair(i - math.comb(c, 3))
    return a, b, c


# -- per-document index -----------------------------------------------------------------------


@dataclass
class DocIndex:
    """One document's entities (global indices, salience order) and their co-occurrence."""

    doc: Document
    passage_ids: list[str]  # in document order
    entities: list[int] = field(default_factory=list)  # global entity indices; local index = position
    where: list[list[int]] = field(default_factory=list)  # local entity -> passage positions
    weights: dict[int, dict[int, int]] = field(default_factory=dict)  # local a -> {local b: shared passages}
    edges: list[tuple[int, int, int]] = field(default_factory=list)  # (weight, a, b), a < b, strongest first

    def sort_edges(self) -> None:
        self.edges = sorted(((w, a, b) for a, nb in self.weights.items() for b, w in nb.items() if a < b),
                            key=lambda e: (-e[0], e[1], e[2]))


def build_index(documents: list[Document], passages: list[Passage], entities: list[Entity],
                graph: Any = None) -> list[DocIndex]:
    """Documents with their entities (salience order) and within-document co-occurrence: shared
    passages counted from the mentions, restricted to the edges of `graph` (networkx, node ids =
    entity ids) when one is given."""
    docs = {d.doc_id: DocIndex(d, []) for d in documents}
    where_global: dict[str, dict[int, list[int]]] = {d: {} for d in docs}
    pos: dict[str, int] = {}
    for p in sorted(passages, key=lambda p: (p.doc_id, p.index)):
        if p.doc_id in docs:
            pos[p.passage_id] = len(docs[p.doc_id].passage_ids)
            docs[p.doc_id].passage_ids.append(p.passage_id)
    for gi, ent in enumerate(entities):  # entities come sorted by salience
        for m in ent.mentions:
            if m.doc_id in docs and m.passage_id in pos:
                where_global[m.doc_id].setdefault(gi, []).append(pos[m.passage_id])
    for doc_id, idx in docs.items():
        found = where_global[doc_id]
        idx.entities = sorted(found)
        idx.where = [sorted(set(found[g])) for g in idx.entities]
    edges = None
    if graph is not None:  # the graph decides which pairs are related (extract may prune edges)
        gid = {e.entity_id: i for i, e in enumerate(entities)}
        edges = {frozenset((gid[u], gid[v])) for u, v in graph.edges() if u in gid and v in gid}
    for idx in docs.values():
        _weights_from_mentions(idx, edges)
        idx.sort_edges()
    return [docs[d.doc_id] for d in documents]


def _weights_from_mentions(idx: DocIndex, edges: set[frozenset[int]] | None) -> None:
    """Shared passages per pair within the document, counted from the mentions: the graph's
    edges keep only a capped list of passage ids, so per-document weights come from here."""
    by_passage: dict[int, list[int]] = {}
    for local, positions in enumerate(idx.where):
        for p in positions:
            by_passage.setdefault(p, []).append(local)
    for members in by_passage.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if edges is None or frozenset((idx.entities[a], idx.entities[b])) in edges:
                    idx.weights.setdefault(a, {})[b] = idx.weights.get(a, {}).get(b, 0) + 1
                    idx.weights.setdefault(b, {})[a] = idx.weights[a][b]


# -- streams of entity tuples for one document (local indices, ascending) --------------------


def _shuffled(idx: DocIndex, k: int, seed: str, skip: set) -> Iterator[tuple[int, ...]]:
    n = len(idx.entities)
    if n < k:
        return
    perm = Permutation(math.comb(n, k), f"{seed}:{idx.doc.doc_id}:{k}")
    unrank = unrank_pair if k == 2 else unrank_triple
    for i in range(len(perm)):
        t = unrank(perm[i])
        if t not in skip:
            yield t


def _coverage_pairs(idx: DocIndex, seed: str) -> Iterator[tuple[int, ...]]:
    n, seen, covered = len(idx.entities), set(), set()
    if n < 2:
        return
    for e in range(n):  # salience order: every entity gets a pair before any entity repeats
        if e in covered:
            continue
        partners = sorted(idx.weights.get(e, {}).items(), key=lambda x: (-x[1], x[0]))
        fresh = (b for b, _ in partners if b not in covered)
        strongest = (b for b, _ in partners[:1])
        later = (b for b in range(e + 1, n) if b not in covered)  # e is uncovered: no pair with e was yielded
        b = next((b for it in (fresh, strongest, later) for b in it), e - 1 if e else 1)
        pair = (min(e, b), max(e, b))
        seen.add(pair)
        covered.update(pair)
        yield pair
    for _, a, b in idx.edges:  # then every co-occurring pair, strongest first
        if (a, b) not in seen:
            seen.add((a, b))
            yield (a, b)
    yield from _shuffled(idx, 2, seed, seen)


def _coverage_triples(idx: DocIndex, seed: str) -> Iterator[tuple[int, ...]]:
    seen: set[tuple[int, ...]] = set()
    if len(idx.entities) < 3:
        return
    for _, a, b in idx.edges:  # every co-occurring pair grows one triple
        wa, wb = idx.weights.get(a, {}), idx.weights.get(b, {})
        # a common neighbour first (a triangle), else the strongest neighbour of either end
        common = [c for c in wa if c in wb and c != b]
        pool = common or [c for c in (*wa, *wb) if c not in (a, b)]
        score = lambda c: (wa.get(c, 0) + wb.get(c, 0), -c)
        best = max(pool, key=score, default=None)
        if best is not None and tuple(sorted((a, b, best))) in seen:  # rare: rank them all
            best = next((c for c in sorted(pool, key=score, reverse=True)
                         if tuple(sorted((a, b, c))) not in seen), None)
        if best is not None:
            t = tuple(sorted((a, b, best)))
            seen.add(t)
            yield t
    yield from _shuffled(idx, 3, seed, seen)


def _weighted_pairs(idx: DocIndex, seed: str) -> Iterator[tuple[int, ...]]:
    # Efraimidis-Spirakis: sorting by u^(1/w) is weighted sampling without replacement.
    rng = random.Random(f"{seed}:{idx.doc.doc_id}:wp")
    keyed = sorted(((rng.random() ** (1 / w), a, b) for w, a, b in idx.edges), reverse=True)
    for _, a, b in keyed:
        yield (a, b)


def _weighted_triples(idx: DocIndex, seed: str, patience: int = 200) -> Iterator[tuple[int, ...]]:
    """An edge drawn by weight, then a third entity by its weight to either end; repeats are
    rejected, and the stream ends after `patience` rejections in a row (the space is spent)."""
    edges = idx.edges
    if not edges or len(idx.entities) < 3:
        return
    rng = random.Random(f"{seed}:{idx.doc.doc_id}:wt")
    cumulative, total = [], 0
    for w, _, _ in edges:
        total += w
        cumulative.append(total)
    seen: set[tuple[int, ...]] = set()
    misses = 0
    while misses < patience:
        _, a, b = edges[bisect.bisect_right(cumulative, rng.random() * total)]
        third = {**idx.weights[a]}
        for c, w in idx.weights[b].items():
            third[c] = third.get(c, 0) + w
        third.pop(a, None), third.pop(b, None)
        if not third:
            misses += 1
            continue
        c = rng.choices(list(third), weights=list(third.values()))[0]
        t = tuple(sorted((a, b, c)))
        if t in seen:
            misses += 1
            continue
        misses = 0
        seen.add(t)
        yield t


def _relation_tuples(idx: DocIndex) -> Iterator[tuple[int, ...]]:
    """The relation mode's pairs and triples of a document, in turns: every co-occurring pair
    (strongest first), and the triple each grows (coverage's first phase). Bounded by the edges:
    the relation mode never wanders the shuffled space of tuples that do not co-occur."""
    grown = _coverage_triples(idx, "")
    triples = islice(grown, len(idx.edges)) if len(idx.entities) >= 3 else iter(())
    return _interleave([iter([(a, b) for _, a, b in idx.edges]), triples])


STREAMS = {
    "exhaustive": {2: lambda idx, s: _shuffled(idx, 2, s, set()), 3: lambda idx, s: _shuffled(idx, 3, s, set())},
    "coverage": {2: _coverage_pairs, 3: _coverage_triples},
    "weighted": {2: _weighted_pairs, 3: _weighted_triples},
}


def _interleave(streams: Iterable[Iterator]) -> Iterator:
    """Round-robin over iterators, dropping each when it runs out."""
    live = list(streams)
    while live:
        nxt = []
        for it in live:
            for item in it:
                yield item
                nxt.append(it)
                break
        live = nxt


# -- tasks ------------------------------------------------------------------------------------


class RelationSampler:
    """Yields SynthTask records lazily in a seeded, reproducible order.

    `salt` maps each mode to what else determines its output (template version, model, sampling,
    seed); `passage_tokens` maps passage ids to token counts for the local-context cap (default:
    an estimate from the word count).
    """

    def __init__(self, index: list[DocIndex], entities: list[Entity], passages: list[Passage], *,
                 modes: list[str], strategy: str = "coverage", context: str = "local",
                 context_tokens: int = 768, seed: int = 0, salt: dict[str, Any] | None = None,
                 passage_tokens: dict[str, int] | None = None, units: UnitTasks | None = None,
                 per_doc: dict[str, int] | None = None, round_tasks: int = 64, coverage_k: int = 3) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        if units is None and (strategy == "units" or any(m in UNIT_MODES for m in modes)):
            raise ValueError("strategy units and the unit-anchored modes need `units` (sources.UnitTasks)")
        self.index, self.modes, self.strategy = index, list(modes), strategy
        self.context, self.context_tokens, self.seed = context, context_tokens, str(seed)
        self.names = [e.name for e in entities]
        self.entity_ids = [e.entity_id for e in entities]
        self.salt = {m: json.dumps(v, sort_keys=True) for m, v in (salt or {}).items()}  # serialised once
        self.tokens = passage_tokens or {p.passage_id: len(p.text.split()) * 4 // 3 + 1 for p in passages}
        self.units, self.per_doc, self.round_tasks = units, dict(per_doc or {}), max(1, round_tasks)
        self.feedback = UnitFeedback(units, coverage_k) if strategy == "units" and units is not None else None
        self._seq = count()
        self._drawn: set[tuple[str, str]] = set()

    def __iter__(self) -> Iterator[SynthTask]:
        self._seq = count()
        self._drawn: set[tuple[str, str]] = set()  # relation and walk tasks drawn so far
        stream = self._stream()
        if self.feedback is None:
            yield from stream
            return
        self.feedback.reset()
        recent: list[str] = []
        for pos in count():
            if pos and pos % self.round_tasks == 0:  # everything yielded so far is generated and stored by now
                self.feedback.refresh(recent)
                recent = []
            task = next(stream, None)  # computed now, after the refresh
            if task is None:
                return
            recent.append(task.task_id)
            yield task

    def _stream(self) -> Iterator[SynthTask]:
        if "summary" in self.modes:
            for idx in self.index:
                yield self._summary(idx)
        streams = [m for m in self.modes if m != "summary"]
        if self.strategy == "exhaustive":  # phase by phase, as the paper: all pairs, then triples
            for mode in streams:
                yield from _interleave([self._doc_stream(idx, mode) for idx in self.index])
        else:  # documents and modes take turns
            # lists, not generators: each inner stream must bind its own document now
            yield from _interleave([_interleave([self._doc_stream(idx, m) for m in streams]) for idx in self.index])

    def _doc_stream(self, idx: DocIndex, mode: str) -> Iterator[SynthTask]:
        stream = self._mode_stream(idx, mode)
        limit = self.per_doc.get(mode)
        return islice(stream, limit) if limit else stream

    def _mode_stream(self, idx: DocIndex, mode: str) -> Iterator[SynthTask]:
        if mode in ("relation", "walk"):
            ids = [self.entity_ids[g] for g in idx.entities]
            found = (self.units.relation([ids[e] for e in local]) for local in _relation_tuples(idx)) \
                if mode == "relation" else self.units.walks(idx.doc.doc_id, ids)
            for ut in found:
                if ut is not None and (ut.mode, ut.key) not in self._drawn:  # a tuple met in another document
                    self._drawn.add((ut.mode, ut.key))
                    yield self._unit_task(ut)
            return
        if mode in UNIT_MODES:
            for ut in self.units.stream(idx.doc.doc_id, mode, self.feedback):
                yield self._unit_task(ut)
            return
        if mode == "rephrase":
            for pid in idx.passage_ids:
                yield self._task("rephrase", idx, [], [pid])
            return
        k = {"pair": 2, "triple": 3}[mode]
        if self.feedback is None:
            for local in STREAMS[self.strategy][k](idx, self.seed):
                yield self._task(mode, idx, list(local), self._context_for(idx, local))
            return
        provenance = lambda local: self._provenance(idx, local)  # noqa: E731
        for local in self.feedback.least_covered(STREAMS["coverage"][k](idx, self.seed), provenance):
            positions = provenance(local)
            yield self._task(mode, idx, list(local), self._context_for(idx, local),
                             [self.units.units[i].unit_id for i in positions])

    def _provenance(self, idx: DocIndex, local: Iterable[int]) -> list[int]:
        """Positions of the source units of a pair or triple: the sentences of its context that
        mention one of its entities (all sentences of the context when none does)."""
        ids = {self.entity_ids[idx.entities[e]] for e in local}
        inside = sorted({i for pid in self._context_for(idx, local) for i in self.units.passage_units.get(pid, ())})
        named = [i for i in inside if ids & set(self.units.units[i].entities)]
        return named or inside

    def _unit_task(self, ut: UnitTask) -> SynthTask:
        salt = self.salt.get(ut.mode) or self.units.salt(ut.mode)
        tid = task_id(ut.mode, ut.entities, ut.doc_ids, ut.passage_ids,
                      json.dumps([salt, ut.key, ut.digest, ut.strategy], ensure_ascii=False))
        self.units.remember(tid, ut)
        return SynthTask(tid, ut.mode, ut.entities, ut.doc_ids, ut.passage_ids, next(self._seq), unit_ids=ut.unit_ids)

    def _summary(self, idx: DocIndex) -> SynthTask:
        top = list(range(min(SUMMARY_ENTITIES, len(idx.entities))))
        return self._task("summary", idx, top, self._context_for(idx, range(len(idx.entities))))

    def _context_for(self, idx: DocIndex, local: Iterable[int]) -> list[str]:
        """The whole document, or the passages that mention most of the entities, up to the cap."""
        if self.context == "document":
            return list(idx.passage_ids)
        hits: dict[int, int] = {}
        for e in local:
            for p in idx.where[e]:
                hits[p] = hits.get(p, 0) + 1
        chosen, used = [], 0
        for p in sorted(hits, key=lambda p: (-hits[p], p)):
            n = self.tokens.get(idx.passage_ids[p], 0)
            if not chosen or used + n <= self.context_tokens:
                chosen.append(p)
                used += n
        if not chosen and idx.passage_ids:  # a summary of a document without entities
            chosen = [0]
        return [idx.passage_ids[p] for p in sorted(chosen)]

    def _task(self, mode: str, idx: DocIndex, local: list[int], passage_ids: list[str],
              unit_ids: list[str] | None = None) -> SynthTask:
        names = [self.names[idx.entities[e]] for e in local]
        doc_ids = [idx.doc.doc_id]
        tid = task_id(mode, names, doc_ids, passage_ids, self.salt.get(mode, "null"))
        return SynthTask(tid, mode, names, doc_ids, passage_ids, next(self._seq), unit_ids=unit_ids or [])
