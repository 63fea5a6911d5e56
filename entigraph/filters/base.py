"""What every filter shares: the context passages are compared against, a flag with its reason,
the Filter step, and applying a list of filters (each drop counted and kept with its reason)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from tqdm import tqdm

from ..backends.base import Backend
from ..entities.index import EntityIndex
from ..facts.units import name_forms
from ..records import Document, Entity, Passage, SynthPassage
from ..modes import GENERATOR_FREE
from ..text import ECHO_N, ngram_hashes, words


@dataclass
class FilterContext:
    """What the filters compare passages against (data, not thresholds)."""

    source: dict[str, str]  # passage_id -> source passage text (the context given to the model)
    source_lengths: list[int]  # word counts of the source passages (length reference "source")
    vocab: set[str]  # lowercase corpus words: a name with a word outside it is invented
    corpus_grams: set[int]  # corpus word 8-grams: copying the source is not prompt echo
    entities: EntityIndex
    judge: Backend | None = None
    forms: dict[str, frozenset[str]] = field(default_factory=dict)  # name form -> every form of its entity

    def source_text(self, p: SynthPassage) -> str:
        """The context a passage was generated from: its source passages."""
        return "\n\n".join(self.source.get(pid, "") for pid in p.passage_ids)

    @classmethod
    def build(cls, documents: list[Document], passages: list[Passage], entities: list[Entity],
              judge: Backend | None = None) -> "FilterContext":
        vocab: set[str] = set()
        grams: set[int] = set()
        for doc in documents:
            toks = words(doc.title + "\n" + doc.text)
            vocab.update(toks)
            grams.update(ngram_hashes(toks, ECHO_N))
        return cls(
            source={p.passage_id: p.text for p in passages},
            source_lengths=[len(p.text.split()) for p in passages], vocab=vocab,
            corpus_grams=grams, entities=EntityIndex.build(entities), judge=judge, forms=name_forms(entities),
        )


@dataclass
class Flag:
    reason: str  # the measured value and the threshold
    text: str | None = None  # set: the passage is repaired (kept with this text), not dropped
    sentences: list[dict] | None = None  # sentences removed, each with its reason (the support gate)


class Filter:
    name = ""
    expensive = False  # expensive filters run only on the passages that reach them
    all_modes = False  # False: generator-free passages pass untouched

    def applies(self, p: SynthPassage) -> bool:
        return self.all_modes or p.mode not in GENERATOR_FREE

    def check(self, p: SynthPassage, ctx: FilterContext) -> Flag | None:
        raise NotImplementedError

    def run(self, passages: list[SynthPassage], ctx: FilterContext) -> list[Flag | None]:
        return [self.check(p, ctx) for p in passages]


@dataclass
class Outcome:
    kept: list[SynthPassage]
    dropped: list[tuple[SynthPassage, str, str]]  # (passage as it reached the filter, filter, reason)
    edits: dict[str, list[dict]]  # task_id -> repairs made to a kept passage
    stats: list[dict]  # per filter, in order
    # task_id -> sentences a filter removed (repaired) or judged (dropped passage), each with its reason
    sentences: dict[str, list[dict]] = field(default_factory=dict)


def run_filter(f: Filter, passages: list[SynthPassage], ctx: FilterContext) -> list[Flag | None]:
    """The filter's flags for the passages it applies to; None (pass) for the others."""
    idx = [i for i, p in enumerate(passages) if f.applies(p)]
    if len(idx) == len(passages):
        return f.run(passages, ctx)
    flags: list[Flag | None] = [None] * len(passages)
    for i, flag in zip(idx, f.run([passages[i] for i in idx], ctx) if idx else []):
        flags[i] = flag
    return flags


def apply_filters(passages: list[SynthPassage], filters: list[Filter], ctx: FilterContext) -> Outcome:
    """Drop each passage at the first filter that rejects it (seq order decides which of two
    near-duplicates stays). `would_flag` counts what each filter flags on all inputs on its own;
    expensive filters are counted only on the passages that reach them (`evaluated`)."""
    passages = sorted(passages, key=lambda p: p.seq)
    would = {f.name: sum(flag is not None for flag in run_filter(f, passages, ctx))
             for f in tqdm(filters, desc="filters (would flag)", leave=False) if not f.expensive}
    alive = [copy.deepcopy(p) for p in passages]
    dropped, edits, stats, sentences = [], {}, [], {}
    for f in tqdm(filters, desc="filters", leave=False):
        flags = run_filter(f, alive, ctx)
        survivors, n_repaired = [], 0
        for p, flag in zip(alive, flags):
            if flag is not None and flag.sentences:
                sentences.setdefault(p.task_id, []).extend({"filter": f.name, **s} for s in flag.sentences)
            if flag is None:
                survivors.append(p)
            elif flag.text is not None:
                edits.setdefault(p.task_id, []).append(_repair(p, f.name, flag))
                survivors.append(p)
                n_repaired += 1
            else:
                dropped.append((p, f.name, flag.reason))
        stats.append({
            "filter": f.name, "evaluated": len(alive),
            "would_flag": would.get(f.name, sum(flag is not None for flag in flags)),
            "dropped": len(alive) - len(survivors), "repaired": n_repaired,
            "remaining": len(survivors), "tokens_remaining": sum(p.completion_tokens for p in survivors),
        })
        alive = survivors
    return Outcome(kept=alive, dropped=dropped, edits=edits, stats=stats, sentences=sentences)


def _repair(p: SynthPassage, name: str, flag: Flag) -> dict:
    """Replace the text; scale completion_tokens by the characters kept (the original is recorded)."""
    edit = {"filter": name, "reason": flag.reason, "original_text": p.text,
            "original_completion_tokens": p.completion_tokens}
    if flag.sentences:
        edit["removed_sentences"] = flag.sentences
    share = len(flag.text or "") / max(1, len(p.text))
    p.text = flag.text or ""
    p.completion_tokens = round(p.completion_tokens * share)
    return edit
