"""Which source facts does the synthetic corpus restate, and how often? Counted per unit and mode.

A synthetic sentence restates a source unit when it carries at least ``min_anchor_share`` of the
unit's names and numbers and at least ``min_content_share`` of its content words (thresholds
measured in docs/faithful.md). The units a sentence may restate are looked up in an inverted
index, so adding a passage costs the same whatever the size of the corpus.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from ..text import invented_names
from ..text import sentences
from .support import Claim, Evidence, SupportGate, is_scaffold, name_present, strip_markup
from .units import SourceUnit, UnitIndex

MIN_ANCHOR_SHARE = 0.75  # chosen on the tuning documents (docs/faithful.md)
MIN_CONTENT_SHARE = 0.6
ALL = "*"  # the mode under which every passage is also counted


class Coverage:
    """Counts, per source unit and synthesis mode, the synthetic sentences that restate it;
    also the share of sentences the source supports (``gate``) and the invented-name rate."""

    def __init__(self, units: list[SourceUnit], vocab: set[str], *, k: int = 3,
                 min_anchor_share: float = MIN_ANCHOR_SHARE, min_content_share: float = MIN_CONTENT_SHARE,
                 forms: Mapping[str, frozenset[str]] | None = None, gate: SupportGate | None = None,
                 max_postings: int = 200):
        self.units = units
        self.vocab = vocab
        self.k = k
        self.min_anchor_share = min_anchor_share
        self.min_content_share = min_content_share
        self.forms = forms
        self.gate = gate or SupportGate(forms=forms)
        self.index = UnitIndex(units, max_postings)
        self.doc_text: dict[str, list[str]] = defaultdict(list)
        for u in units:
            self.doc_text[u.doc_id].append(u.text)
        self._evidence: dict[tuple[str, ...] | None, Evidence] = {}
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(units))
        self.stats: dict[str, Counter] = defaultdict(Counter)

    def evidence(self, doc_ids: Iterable[str] | None) -> Evidence:
        """The source a passage is checked against: its documents (the whole corpus when unknown)."""
        key = tuple(sorted(doc_ids)) if doc_ids is not None else None
        if key not in self._evidence:
            if len(self._evidence) > 10_000:  # bounded cache: pairs and triples of documents vary
                self._evidence.clear()
            docs = key if key is not None else self.doc_text.keys()
            self._evidence[key] = Evidence.of("\n".join(t for d in docs for t in self.doc_text.get(d, ())))
        return self._evidence[key]

    def restated(self, sentence: str | Claim, doc_ids: Iterable[str] | None = None) -> list[int]:
        """Positions of the units `sentence` restates."""
        c = sentence if isinstance(sentence, Claim) else Claim.of(sentence)
        content, vocab, nums = c.content, c.words, set(c.numbers)
        out = []
        for i in self.index.candidates(content, doc_ids):
            unit, ucontent = self.index.units[i], self.index.content[i]
            if len(ucontent & content) < self.min_content_share * len(ucontent):
                continue
            anchors = len(unit.names) + len(unit.numbers)
            if anchors:
                found = sum(name_present(n, vocab, self.forms) for n in unit.names)
                found += sum(n in nums for n in unit.numbers)
                if found < self.min_anchor_share * anchors - 1e-9:
                    continue
            out.append(i)
        return sorted(out)

    def add(self, text: str, mode: str = "", doc_ids: Iterable[str] | None = None) -> list[list[str]]:
        """Counts one synthetic passage; returns, per sentence, the ids of the units it restates.

        `doc_ids`: the documents the passage was generated from (restatements and support are
        looked for there); None looks across the corpus."""
        doc_ids = list(doc_ids) if doc_ids is not None else None
        ev = self.evidence(doc_ids)
        out = []
        for m in (mode, ALL):
            self.stats[m]["passages"] += 1
        names = invented = 0
        for sentence in sentences(text):
            if is_scaffold(sentence):  # an instruction of a generator-free mode: not a claim
                out.append([])
                continue
            cands, inv = invented_names(strip_markup(sentence), self.vocab)
            names, invented = names + len(cands), invented + len(inv)
            claim = Claim.of(sentence, cands)
            hits = self.restated(claim, doc_ids)
            supported = self.gate.check(claim, ev) is None
            for m in (mode, ALL):
                counts, stats = self.counts[m], self.stats[m]
                for i in hits:
                    counts[i] += 1
                stats["sentences"] += 1
                stats["supported"] += supported
                stats["restating"] += bool(hits)
            out.append([self.units[i].unit_id for i in hits])
        for m in (mode, ALL):
            self.stats[m]["names"] += names
            self.stats[m]["invented"] += invented
        return out

    def unit_counts(self, mode: str = ALL) -> dict[str, int]:
        """unit_id -> restating sentences so far (what a coverage-driven sampler reads)."""
        counts = self.counts[mode] if mode in self.counts else [0] * len(self.units)
        return {u.unit_id: c for u, c in zip(self.units, counts)}

    def report(self) -> dict:
        """Per mode (and ``"*"`` for all): unit coverage >= 1 and >= k per document and overall,
        supported- and restating-sentence rates, invented-name rate. Plain JSON types."""
        by_doc: dict[str, list[int]] = defaultdict(list)
        for i, u in enumerate(self.units):
            if u.content:  # a unit without content words cannot be restated
                by_doc[u.doc_id].append(i)
        out: dict = {"k": self.k, "min_anchor_share": self.min_anchor_share,
                     "min_content_share": self.min_content_share, "modes": {}}
        for mode in sorted(self.stats):
            counts, st = self.counts[mode], self.stats[mode]
            per_doc = {d: {"units": len(ix), "covered_1": _share(counts[i] >= 1 for i in ix),
                           "covered_k": _share(counts[i] >= self.k for i in ix)} for d, ix in by_doc.items()}
            every = [i for ix in by_doc.values() for i in ix]
            out["modes"][mode] = {
                "passages": st["passages"], "sentences": st["sentences"],
                "supported_sentence_rate": _ratio(st["supported"], st["sentences"]),
                "restating_sentence_rate": _ratio(st["restating"], st["sentences"]),
                "names": st["names"], "invented_name_rate": _ratio(st["invented"], st["names"]),
                "units": len(every), "covered_1": _share(counts[i] >= 1 for i in every),
                "covered_k": _share(counts[i] >= self.k for i in every),
                "doc_mean_covered_1": _mean(d["covered_1"] for d in per_doc.values()),
                "doc_mean_covered_k": _mean(d["covered_k"] for d in per_doc.values()),
                "per_doc": per_doc}
        return out


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None
