"""spaCy candidates: NER spans and noun chunks with character offsets into Document.text."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..errors import ConfigError
from ..records import Document
from .spans import (
    _INNER_PUNCT,
    _TRIM,
    _WORDS,
    ARTICLES,
    ATTRIBUTE_LABELS,
    CONCEPT,
    DATE_WORDS,
    GENERIC_NOUNS,
    MISC,
    NAME_CONNECTORS,
    PRONOUNS,
    Candidate,
    Drops,
    _singular,
    clean_span,
    norm_space,
)

if TYPE_CHECKING:
    from ..config import RunConfig

@functools.lru_cache(maxsize=2)
def load_spacy(name: str, noun_phrases: bool):
    """Only the components we use: the parser (noun chunks) costs ~30 % of the throughput."""
    import spacy

    from ..models import resolve_spacy

    exclude = ["lemmatizer", "senter"]
    if not noun_phrases:
        exclude += ["tagger", "parser", "attribute_ruler"]
    try:
        nlp = spacy.load(resolve_spacy(name), exclude=exclude)
    except OSError:
        raise ConfigError(f"models.spacy: cannot load spaCy pipeline {name!r} (is it installed?)") from None
    if "ner" not in nlp.pipe_names:
        raise ConfigError(f"models.spacy: pipeline {name!r} has no 'ner' component")
    return nlp


def segments(text: str, max_chars: int = 5_000) -> list[tuple[int, int]]:
    """Non-overlapping pieces of a document, cut at paragraph, sentence or word boundaries.

    spaCy runs on these rather than on the overlapping passages (no text is parsed twice) and
    a 100,000-word document never hits nlp.max_length; offsets stay document offsets.
    """
    out, pos = [], 0
    while pos < len(text):
        end = min(len(text), pos + max_chars)
        if end < len(text):
            cut = text.rfind("\n\n", pos, end)
            if cut <= pos + max_chars // 2:
                cut = text.rfind(". ", pos, end) + 1
            if cut <= pos + max_chars // 2:
                cut = text.rfind(" ", pos, end)
            end = cut if cut > pos else end
        if text[pos:end].strip():
            out.append((pos, end))
        pos = end
    return out


def _raw_alias(full_text: str, ent) -> str:
    """Keep the article / possessive variant of a name ("the Ruler", "Holmes's") as an alias."""
    raw = norm_space(ent.text.strip(_TRIM.replace("'", "").replace("’", "")))
    return raw if re.fullmatch(r"(?i:the\s+)?[^'’]+(?:['’]s)?", raw) else ""


def _ner_candidate(ent, doc_id: str, offset: int, full_text: str, drops: Drops) -> Candidate | None:
    if ent.label_ in ATTRIBUTE_LABELS:
        drops.add(f"attribute label ({ent.label_})", ent.text)
        return None
    span = clean_span(full_text, offset + ent.start_char, offset + ent.end_char)
    surface = full_text[span[0]:span[1]] if span else ""
    words = [w.lower() for w in _WORDS.findall(surface)]
    if not words or all(w in PRONOUNS or w in ARTICLES or w.isdigit() for w in words):
        drops.add("pronoun or number", ent.text)
        return None
    if all(w in DATE_WORDS or w.isdigit() for w in words):
        drops.add("date", ent.text)
        return None
    if not any(c.isupper() for c in surface):  # "hourly", "seconds": mislabelled common words
        drops.add("lower-case named entity", ent.text)
        return None
    if len(words) > 6:
        drops.add("too long", ent.text)
        return None
    if len(ent) == 1 and ent.label_ != "NORP" and ent[0].pos_ in ("ADV", "VERB", "ADJ", "AUX", "INTJ", "PRON", "DET"):
        drops.add("not a noun", ent.text)  # sentence-initial "Happily", "Spun" (needs the tagger)
        return None
    if _INNER_PUNCT.search(surface):
        drops.add("punctuation inside a name", ent.text)  # 'Coburn Whitley—"Cob'
        return None
    if any(w[:1].islower() and w not in NAME_CONNECTORS for w in surface.split()[1:]):
        drops.add("lower-case word inside a name", ent.text)  # "Ruler is the Ruler", "Alliance blockade"
        return None
    return Candidate(doc_id, span[0], span[1], surface, ent.label_, "spacy", _raw_alias(full_text, ent), 
                     common=ent.label_ == "NORP")


def _chunk_candidate(chunk, doc_id: str, offset: int, full_text: str, drops: Drops) -> Candidate | None:
    toks = [t for t in chunk if not t.is_space]
    # leading determiners, pronouns, numbers and stop words: "the other", "his first", "a man"
    while toks and (toks[0].pos_ in ("DET", "PRON", "NUM", "PART", "PUNCT", "ADP", "CCONJ")
                    or toks[0].is_stop or toks[0].like_num):
        toks = toks[1:]
    while toks and toks[-1].pos_ in ("PUNCT", "PART"):
        toks = toks[:-1]
    if not toks or chunk.root.pos_ not in ("NOUN", "PROPN") or chunk.root not in toks:
        drops.add("no noun left", chunk.text)
        return None
    head = chunk.root.text.lower()
    if head in GENERIC_NOUNS or _singular(head) in GENERIC_NOUNS or head in PRONOUNS:
        drops.add("generic noun", chunk.text)
        return None
    if len(toks) > 4 or any(t.like_num or t.pos_ == "PRON" for t in toks):
        drops.add("long or numeric phrase", chunk.text)
        return None
    span = clean_span(full_text, offset + toks[0].idx, offset + toks[-1].idx + len(toks[-1].text))
    if not span or span[1] - span[0] < 3:
        drops.add("too short", chunk.text)
        return None
    surface = full_text[span[0]:span[1]]
    if all(w.lower() in DATE_WORDS or w.isdigit() for w in surface.split()):
        drops.add("date", chunk.text)
        return None
    # a proper noun NER missed ("Bening"): a name of unknown type; demoted again if the
    # documents also write it in lower case
    proper = (all(t.pos_ == "PROPN" for t in toks) and all(w[:1].isupper() for w in surface.split())
              and re.split(r"['’]", surface.lower())[0] not in PRONOUNS and not _INNER_PUNCT.search(surface))
    return Candidate(doc_id, span[0], span[1], surface, MISC if proper else CONCEPT, "spacy",
                     common=chunk.root.pos_ == "NOUN")


def spacy_candidates(docs: list[Document], cfg: "RunConfig", drops: Drops) -> list[Candidate]:
    nlp = load_spacy(cfg.models.spacy, cfg.entities.noun_phrases)
    pieces = [((d.text[s:e]), (i, s)) for i, d in enumerate(docs) for s, e in segments(d.text)]
    out: list[Candidate] = []
    words = sum(len(t.split()) for t, _ in pieces)
    bar = tqdm(total=words, desc="spaCy", unit="word", unit_scale=True, leave=False)
    for sdoc, (i, offset) in nlp.pipe(pieces, as_tuples=True, batch_size=8):
        doc = docs[i]
        named_tokens = set()
        for ent in sdoc.ents:
            cand = _ner_candidate(ent, doc.doc_id, offset, doc.text, drops)
            if cand:
                out.append(cand)
                named_tokens.update(range(ent.start, ent.end))
        if cfg.entities.noun_phrases:
            for chunk in sdoc.noun_chunks:
                if named_tokens.intersection(range(chunk.start, chunk.end)):
                    continue  # the named entity inside already stands for it
                cand = _chunk_candidate(chunk, doc.doc_id, offset, doc.text, drops)
                if cand:
                    out.append(cand)
        bar.update(len(sdoc.text.split()))
    bar.close()
    return out
