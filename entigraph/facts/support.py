"""Does the source support a sentence? Names, numbers and content words, checked one sentence at a time.

A sentence is supported by a source text when every name it uses occurs in the source (or another
form of the same entity does: "Sherlock Holmes" where the source says "Holmes"), every number it
writes occurs there, and at least ``min_share`` of its content words do. ``SupportGate`` applies
this to each sentence of a generated passage, drops the unsupported ones with a reason, and keeps
the passage when enough remains. Quoting the source verbatim is always supported.

Markup is not a claim: a list marker ("2.", "-"), a turn or field label at a sentence's opening
("Question:", "Answer:", "Fill in the blank:", "Teacher:", "Key fact:", ``LABELS``) is set aside
before a sentence is checked, and the fixed instructions of the generator-free modes
(``SCAFFOLD``: "Answer the questions based on the text above.") are neither checked nor counted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..text import (
    TITLES,
    content_words,
    numbers,
    sentence_names,
    sentence_spans,
    strip_list_marker,
    words,
)
from .units import name_key

MIN_SHARE = 0.6  # chosen on the tuning documents (docs/faithful.md)

# Turn and field labels that open a sentence in question-answer, dialogue, note and list forms.
LABELS = re.compile(
    r"(?:\*\*|__)?(?:Question|Answer|Q|A|Fill in the blank|Student|Teacher|Tutor|Learner|Interviewer|"
    r"Expert|Reader|Note|Notes|Fact|Key fact|Key point|Summary|Explanation|Event|Strategy|Step|Speaker|"
    r"Person)(?: \d{1,3}| [A-Z])?\s*:(?:\*\*|__)?\s+")
# Fixed instructions written by the generator-free modes (entigraph/facts/transforms.py).
SCAFFOLD = frozenset({"Answer the questions based on the text above."})


def strip_markup(sentence: str) -> str:
    """The sentence without its list marker and opening labels: "- Answer: Zorblax Venn." -> "Zorblax Venn." """
    s = strip_list_marker(sentence)
    while m := LABELS.match(s):
        s = s[m.end():]
    return s


def is_scaffold(sentence: str) -> bool:
    """An instruction of a generator-free mode: states nothing about the source."""
    return sentence.strip() in SCAFFOLD


@dataclass(frozen=True)
class Evidence:
    """What a source text offers, digested once: its words, numbers and content words."""

    words: frozenset[str]
    numbers: frozenset[str]
    content: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Evidence:
        return cls(frozenset(words(text)), frozenset(numbers(text)), frozenset(content_words(text)))


def name_present(name: str, vocab: frozenset[str] | set[str],
                 forms: Mapping[str, frozenset[str]] | None = None) -> bool:
    """All words of the name, or of another form of the same entity, are in `vocab` (titles
    aside: "St. Thomas More Academy" where the source says "Saint Thomas More Academy")."""
    key = name_key(name)
    alternatives = (forms or {}).get(key) or (key,)
    return any(all(w in vocab for w in f.split() if w not in TITLES) for f in alternatives)


@dataclass(frozen=True)
class Claim:
    """A sentence digested once (list marker and labels dropped): what the support and restatement checks read."""

    text: str
    names: tuple[str, ...]
    words: frozenset[str]
    numbers: tuple[str, ...]
    content: frozenset[str]

    @classmethod
    def of(cls, sentence: str, candidates: list[str] | None = None) -> Claim:
        """`candidates`: ``name_candidates`` of ``strip_markup(sentence)``, when already known."""
        s = strip_markup(sentence)
        return cls(s, tuple(sentence_names(s, candidates=candidates)), frozenset(words(s)),
                   tuple(dict.fromkeys(numbers(s))), frozenset(content_words(s)))


@dataclass
class Support:
    names: list[str]
    absent_names: list[str]
    absent_numbers: list[str]
    shared: int  # content words found in the source
    total: int  # content words of the sentence

    @property
    def share(self) -> float:
        return self.shared / self.total if self.total else 1.0


def support(sentence: str | Claim, source: str | Evidence,
            forms: Mapping[str, frozenset[str]] | None = None) -> Support:
    """How far `source` supports `sentence` (forms: ``units.name_forms(entities)``)."""
    ev = source if isinstance(source, Evidence) else Evidence.of(source)
    c = sentence if isinstance(sentence, Claim) else Claim.of(sentence)
    return Support(
        names=list(c.names),
        absent_names=[n for n in c.names if not name_present(n, ev.words, forms)],
        absent_numbers=[n for n in c.numbers if n not in ev.numbers],
        shared=len(c.content & ev.content), total=len(c.content))


@dataclass
class Dropped:
    sentence: str
    start: int  # character offsets into the passage
    end: int
    reason: str


@dataclass
class GateResult:
    kept: bool  # False: the whole passage is dropped
    text: str  # the supported sentences ("" when dropped)
    sentences: int
    kept_sentences: int
    dropped: list[Dropped] = field(default_factory=list)
    reason: str = ""  # why the passage was dropped


@dataclass
class SupportGate:
    """Keeps the sentences of a passage that its source supports; drops the passage when too few remain.

    Per sentence: at most ``max_absent_names`` names and ``max_absent_numbers`` numbers absent
    from the source, at least ``min_share`` of its content words in it. Per passage: at least
    ``min_kept_sentences`` sentences and ``min_kept_share`` of them kept.
    """

    name: ClassVar[str] = "support"
    min_share: float = MIN_SHARE
    max_absent_names: int = 0
    max_absent_numbers: int = 0
    min_kept_sentences: int = 1
    min_kept_share: float = 0.5
    forms: Mapping[str, frozenset[str]] | None = None  # name form -> every form of its entity

    def check(self, sentence: str | Claim, source: str | Evidence, vocab: set[str] | None = None) -> str | None:
        """None when supported, else the reason (measured value and threshold)."""
        s = support(sentence, source, self.forms)
        if len(s.absent_names) > self.max_absent_names:
            name = s.absent_names[0]
            invented = vocab is not None and any(w not in vocab for w in words(name))
            return f"name '{name}' absent from the source" + (" and the corpus" if invented else "")
        if len(s.absent_numbers) > self.max_absent_numbers:
            return f"number {s.absent_numbers[0]} absent from the source"
        if s.share < self.min_share:
            return f"shares {s.shared}/{s.total} content words with the source ({s.share:.2f} < {self.min_share})"
        return None

    def apply(self, text: str, source: str | Evidence, vocab: set[str] | None = None) -> GateResult:
        """The passage with its unsupported sentences removed, and why each one went.

        `source` is the context the passage was generated from; `vocab` (lowercase corpus words),
        when given, tells an invented name from one taken from elsewhere in the corpus. Scaffold
        sentences (``SCAFFOLD``) stay and are not counted."""
        ev = source if isinstance(source, Evidence) else Evidence.of(source)
        spans = sentence_spans(text)
        kept, dropped, scaffold = [], [], 0
        for a, b in spans:
            if is_scaffold(text[a:b]):
                kept.append((a, b))
                scaffold += 1
                continue
            reason = self.check(text[a:b], ev, vocab)
            if reason:
                dropped.append(Dropped(text[a:b], a, b, reason))
            else:
                kept.append((a, b))
        n, k = len(spans) - scaffold, len(kept) - scaffold
        if k < self.min_kept_sentences or (n and k / n < self.min_kept_share):
            why = (f"keeps {k}/{n} sentences ({k / n if n else 0:.2f}; needs >= {self.min_kept_sentences} "
                   f"and >= {self.min_kept_share} of them)")
            return GateResult(False, "", n, k, dropped, why)
        return GateResult(True, _join(text, kept), n, k, dropped)


def _join(text: str, spans: list[tuple[int, int]]) -> str:
    """The kept sentences, separated as in the passage (paragraph breaks stay)."""
    out, prev = [], None
    for a, b in spans:
        if prev is not None:
            gap = text[prev:a]
            out.append("\n\n" if "\n\n" in gap else "\n" if "\n" in gap else " ")
        out.append(text[a:b])
        prev = b
    return "".join(out)
