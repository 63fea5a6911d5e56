"""The support gate as a filter: unsupported sentences removed with their reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..facts.support import SupportGate
from .base import Filter, Flag

class SentenceSupport(Filter):
    """The support gate (entigraph/facts/support.py), sentence by sentence against the passage's
    source context (the passages it was generated from): unsupported sentences are removed with
    their reason and the rest kept (a repair), or the passage is dropped when too little remains.

    Applies to the LLM's passages of `modes` ([] = every mode). Markup (list markers, "Question:",
    "Teacher:") is not a claim and the generator-free modes' instructions are neither checked nor
    counted; the generator-free passages themselves are the source's sentences and are not judged."""

    name = "support"

    def __init__(self, min_share: float, max_absent_names: int, max_absent_numbers: int,
                 min_kept_sentences: int, min_kept_share: float, modes: Iterable[str] = ()):
        self.modes = frozenset(modes)
        self.gate = SupportGate(min_share=min_share, max_absent_names=max_absent_names,
                                max_absent_numbers=max_absent_numbers, min_kept_sentences=min_kept_sentences,
                                min_kept_share=min_kept_share)

    def applies(self, p):
        return super().applies(p) and (not self.modes or p.mode in self.modes)

    def run(self, passages, ctx):
        """Flags per passage; `tally` counts this call's verdicts per mode (the last call: the real pass)."""
        self.gate.forms = ctx.forms
        self.tally: dict[str, Counter] = {}
        return [self.check(p, ctx) for p in passages]

    def check(self, p, ctx):
        res = self.gate.apply(p.text, ctx.source_text(p), ctx.vocab)
        t = self.tally.setdefault(p.mode, Counter()) if hasattr(self, "tally") else Counter()
        t.update(passages=1, sentences=res.sentences, kept_sentences=res.kept_sentences,
                 dropped=not res.kept, repaired=bool(res.kept and res.dropped))
        gone = [{"sentence": d.sentence, "start": d.start, "end": d.end, "reason": d.reason} for d in res.dropped]
        if not res.kept:
            return Flag(f"unsupported by its source: {res.reason}", sentences=gone)
        if gone:
            return Flag(f"removed {len(gone)}/{res.sentences} sentences unsupported by the source", text=res.text,
                        sentences=gone)
        return None
