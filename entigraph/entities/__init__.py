"""Entities: candidate spans (spaCy NER + noun phrases, an LLM, or both) → merged, counted entities.

Small steps, each recording why it drops a span (``Drops``):

1. candidates   spans with character offsets into ``Document.text``, from spaCy and/or the LLM
2. clean        trim punctuation, possessives ("Holmes's") and leading articles ("the Ruler");
                drop pronouns, numbers, generic nouns ("time", "a man") and number-like NER labels
3. group        by a normalised key (case, honorifics, plurals of common nouns); within a document a
                short person name joins the unique longer PERSON name containing it
                ("Holmes" → "Sherlock Holmes"); spans that join two different entities are dropped
4. re-match     every alias in the documents where the entity was found: NER misses repeats, the
                LLM gives no offsets at all
5. select       ``min_freq`` for common-noun concepts, then at most ``max_per_doc`` per document,
                named entities first, then by salience (frequency × spread over passages)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..records import Document, Passage
from .aliases import (
    demote_common_words,
    group_candidates,
    match_aliases,
    rematch,
    resolve_aliases,
    select,
)
from .llm import find_in_text, llm_candidates, llm_chunks, parse_llm_entities
from .spacy_ner import spacy_candidates
from .spans import (
    CONCEPT,
    Candidate,
    Drops,
    ExtractionResult,
    clean_span,
    normalize_key,
    slug,
)

__all__ = [
    "CONCEPT", "Candidate", "Drops", "ExtractionResult", "clean_span", "extract_entities", "find_in_text",
    "llm_candidates", "llm_chunks", "match_aliases", "merge", "normalize_key", "parse_llm_entities", "slug",
]

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..config import RunConfig


def _stopwatch(seconds: dict[str, float]):
    """lap(step) records the seconds since the previous lap under `step`."""
    clock = [time.perf_counter()]

    def lap(step: str) -> None:
        now = time.perf_counter()
        seconds[step] = round(now - clock[0], 3)
        clock[0] = now

    return lap


def extract_entities(docs: list[Document], passages: list[Passage], cfg: "RunConfig",
                     backend: "Backend | None" = None) -> ExtractionResult:
    """Run the configured extractor(s) and return merged, counted, capped entities."""
    drops = Drops()
    cands: list[Candidate] = []
    failures: list[dict] = []
    seconds: dict[str, float] = {}
    lap = _stopwatch(seconds)

    kind = cfg.entities.extractor
    if kind in ("spacy", "hybrid"):
        cands += spacy_candidates(docs, cfg, drops)
        lap("spacy")
    if kind in ("llm", "hybrid"):
        if backend is None:
            raise ConfigError(f"entities.extractor={kind} needs an LLM backend")
        llm_cands, failures = llm_candidates(docs, passages, cfg, backend, drops)
        cands += llm_cands
        lap("llm")
    result = merge(cands, docs, passages, cfg, drops)
    result.failures = failures
    result.seconds = {**seconds, **result.seconds}
    return result


def merge(cands: list[Candidate], docs: list[Document], passages: list[Passage], cfg: "RunConfig",
          drops: Drops | None = None) -> ExtractionResult:
    """Candidates → entities: group, merge aliases, re-match mentions, apply min_freq and the cap."""
    drops = Drops() if drops is None else drops
    seconds: dict[str, float] = {}
    lap = _stopwatch(seconds)

    groups = group_candidates(cands, drops)
    demote_common_words(groups, docs, drops)
    redirects = resolve_aliases(groups, drops, cfg.entities.link_across_documents)
    # a short name's surfaces become aliases of the long name it joined
    for doc_map in redirects.values():
        for short, long in doc_map.items():
            groups[long].raw.update(groups[short].raw)
            groups[long].sources |= groups[short].sources
            groups[long].honorific += groups[short].honorific
    lap("merge")
    mentions = rematch(docs, passages, groups, redirects)
    lap("mentions")
    entities, salience = select(groups, mentions, passages, cfg, drops)
    lap("select")
    merged = sum(len(e.aliases) for e in entities)
    return ExtractionResult(entities, salience, drops, [], merged, seconds)
