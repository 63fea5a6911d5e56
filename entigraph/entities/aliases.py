"""Grouping, alias merging, re-matching mentions and selection: candidates -> counted entities."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from spacy.lang.en.stop_words import STOP_WORDS
from tqdm.auto import tqdm

from ..records import Document, Entity, Mention, Passage
from .spans import (
    _GAP,
    _TOKEN,
    _WORDS,
    CONCEPT,
    GENERIC_NOUNS,
    HONORIFICS,
    MISC,
    NAME_CONNECTORS,
    Candidate,
    Drops,
    is_named,
    norm_space,
    normalize_key,
    slug,
)

if TYPE_CHECKING:
    from ..config import RunConfig

@dataclass
class _Group:
    key: str
    labels: Counter = field(default_factory=Counter)
    sources: set = field(default_factory=set)
    docs: set = field(default_factory=set)
    forms: Counter = field(default_factory=Counter)  # cleaned surfaces (searched for in the text)
    raw: Counter = field(default_factory=Counter)  # surfaces before cleaning (kept as aliases)
    honorific: int = 0  # candidates written "Mr. X", "Miss X", "Dr. X"

    @property
    def label(self) -> str:
        """PERSON if ever written after an honorific ("Miss Ellery"); else the majority NER
        label; MISC (a proper noun NER missed) only if NER never labelled it."""
        if self.honorific:
            return "PERSON"
        for pick in (lambda k: is_named(k) and k != MISC, is_named):
            votes = Counter({k: v for k, v in self.labels.items() if pick(k)})
            if votes:
                return votes.most_common(1)[0][0]
        return CONCEPT


def group_candidates(cands: Iterable[Candidate], drops: Drops) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for c in cands:
        key = normalize_key(c.text, singular=c.common)
        if not key or key.isdigit():
            drops.add("empty key", c.text)
            continue
        g = groups.setdefault(key, _Group(key))
        g.labels[c.label] += 1
        if is_named(c.label) and slug(c.text).split("-")[0] in HONORIFICS:
            g.honorific += 1
        g.sources.add(c.source)
        g.docs.add(c.doc_id)
        g.forms[norm_space(c.text)] += 1
        if c.raw:
            g.raw[c.raw] += 1
    return groups


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(tok in it for tok in short)


def _initials_match(short: list[str], long: list[str]) -> bool:
    """ "J. Pell" of "Jonas Pell": a one-letter token stands for a word starting with it."""
    it = iter(long)
    return any(len(t) == 1 for t in short) and all(
        any(w == t or (len(t) == 1 and w.startswith(t)) for w in it) for t in short)


def _short_form_of(short: list[str], short_label: str, long: list[str], long_label: str) -> bool:
    """ "Holmes" of "Sherlock Holmes" (persons: any token subsequence; MISC counts as a person,
    as a proper noun NER missed is most often a first or last name), or the one-word head of
    a longer name of any type ("Ellery" of "Marit Ellery", "Trust" of "Quarrow Trust")."""
    persons = short_label in ("PERSON", MISC) and long_label in ("PERSON", MISC)
    if persons and _initials_match(short, long) and len(short) <= len(long) and short != long:
        return True
    if len(long) <= len(short):
        return False
    if persons:
        return _is_subsequence(short, long)
    # a head noun, not the object of "of" ("Tr'en" is not "Ruler of the Tr'en")
    return (len(short) == 1 and long[-1] == short[0] and short_label != "NORP"
            and not NAME_CONNECTORS.intersection(long))


def resolve_aliases(groups: dict[str, _Group], drops: Drops,
                    across_documents: bool = False) -> dict[str, dict[str, str]]:
    """Per document: short PERSON keys → the unique longer PERSON key containing them.

    Per document because "Johnson" is Bob Johnson in one story and Ann Johnson in another.
    Also drops, per document, spans that join two different entities ("Tr'en Korvin").
    Returns {doc_id: {short_key: long_key}}.
    """
    by_doc: dict[str, list[_Group]] = defaultdict(list)
    for g in groups.values():
        for d in g.docs:
            by_doc[d].append(g)
    redirects: dict[str, dict[str, str]] = {}
    every_name = [g for g in groups.values() if is_named(g.label) and g.docs]
    for doc_id, gs in by_doc.items():
        keys = {g.key: g for g in gs}
        for g in gs:  # a span made of two entities with different labels is NER running them together
            toks = g.key.split("-")
            for i in range(1, len(toks)):
                left, right = keys.get("-".join(toks[:i])), keys.get("-".join(toks[i:]))
                if (left and right and left.label != right.label
                        and all(x.label not in (CONCEPT, MISC) for x in (left, right))):
                    g.docs.discard(doc_id)
                    drops.add("joins two entities", g.forms.most_common(1)[0][0])
                    break
        names = [g for g in gs if is_named(g.label) and doc_id in g.docs]
        doc_map = {}
        for g in names:
            toks = g.key.split("-")
            targets = [h for h in names if _short_form_of(toks, g.label, h.key.split("-"), h.label)]
            # only the longest forms: "Smith" → {"John Smith", "John Smith Jr"} is one person
            if not targets and across_documents:
                # no longer form in this document: a corpus that is one world (the same people
                # across documents) still names them in full somewhere; take it if unique
                targets = [h for h in every_name if _short_form_of(toks, g.label, h.key.split("-"), h.label)]
            targets = [h for h in targets if not any(
                o is not h and (_is_subsequence(h.key.split("-"), o.key.split("-"))
                                or _initials_match(h.key.split("-"), o.key.split("-"))) for o in targets)]
            if len(targets) == 1:
                doc_map[g.key] = targets[0].key
            elif len(targets) > 1:
                drops.add("ambiguous short name (kept separate)", g.key + " -> " + ",".join(h.key for h in targets), 0)
        for key in doc_map:  # "Pell" → "J. Pell" → "Jonas Pell"
            seen = {key}
            while doc_map[key] in doc_map and doc_map[key] not in seen:
                seen.add(doc_map[key])
                doc_map[key] = doc_map[doc_map[key]]
        if doc_map:
            redirects[doc_id] = doc_map
    return redirects


def tokens(text: str) -> list[tuple[int, int]]:
    """Word spans; "Tr'en" and "don't" are one word, "Holmes's" is "Holmes" + "s"."""
    return [m.span() for m in _TOKEN.finditer(text)]


def _gap_ok(text: str, word: tuple[int, int], nxt: int) -> bool:
    """Words of one name are apart by whitespace or a hyphen, or by the period of a short
    abbreviation ("Mr. Holmes", "O.Q."), never by a sentence end ("White House. Secret Service")."""
    if _GAP.fullmatch(text, word[1], nxt):
        return True
    return text[word[1]] == "." and word[1] - word[0] <= 3 and not text[word[1] + 1:nxt].strip()


def match_aliases(text: str, aliases: dict[str, str]) -> list[tuple[int, int, str]]:
    """Leftmost-longest matches of alias token sequences: (start, end, target).

    Case-insensitive, but an alias written with a capital ("Will") never matches a lower-case
    word ("will"). Words may be separated by whitespace, a hyphen or a period ("Mr. Holmes",
    "lie-detector" = "lie detector"), nothing else. Cost: O(words × longest alias), not
    O(words × aliases) like one big regex alternation.
    """
    table: dict[tuple[str, ...], tuple[str, bool]] = {}
    longest = 0
    for alias, target in aliases.items():
        key = tuple(alias[s:e].lower() for s, e in tokens(alias))
        if key:
            table.setdefault(key, (target, alias[:1].isupper()))
            longest = max(longest, len(key))
    spans = tokens(text)
    words = [text[s:e].lower() for s, e in spans]
    out, i = [], 0
    while i < len(spans):
        for n in range(min(longest, len(spans) - i), 0, -1):
            hit = table.get(tuple(words[i:i + n]))
            if hit is None:
                continue
            if any(not _gap_ok(text, spans[k], spans[k + 1][0]) for k in range(i, i + n - 1)):
                continue
            target, capital = hit
            if capital and text[spans[i][0]].islower():
                continue
            end = spans[i + n - 1][1]
            if text[end:end + 1] == "." and end - spans[i + n - 1][0] == 1:  # "O.Q." keeps its period
                end += 1
            out.append((spans[i][0], end, target))
            i += n - 1
            break
        i += 1
    return out


def _passage_finder(passages: list[Passage]):
    starts = [p.start for p in passages]

    def find(start: int, end: int) -> str:
        i = bisect.bisect_right(starts, start) - 1
        for j in range(i, max(-1, i - 4), -1):  # overlapping windows: the earliest one holding it
            if passages[j].start <= start and end <= passages[j].end:
                i = j
        return passages[max(i, 0)].passage_id

    return find


def rematch(docs: list[Document], passages: list[Passage], groups: dict[str, _Group],
            redirects: dict[str, dict[str, str]]) -> dict[str, list[Mention]]:
    """Every occurrence of every alias, in the documents where the entity was found."""
    by_doc: dict[str, list[Passage]] = defaultdict(list)
    for p in passages:
        by_doc[p.doc_id].append(p)
    present: dict[str, list[_Group]] = defaultdict(list)
    for g in groups.values():
        for d in g.docs:
            present[d].append(g)
    mentions: dict[str, list[Mention]] = defaultdict(list)
    for doc in tqdm(docs, desc="mentions", unit="doc", leave=False):
        gs = present.get(doc.doc_id)
        if not gs or not by_doc[doc.doc_id]:
            continue
        doc_map = redirects.get(doc.doc_id, {})
        alias_to: dict[str, str] = {}
        for g in sorted(gs, key=lambda g: g.key in doc_map):  # redirected keys win ties
            for form in g.forms:
                alias_to[form] = doc_map.get(g.key, g.key)
        find = _passage_finder(by_doc[doc.doc_id])
        for start, end, target in match_aliases(doc.text, alias_to):
            text = norm_space(doc.text[start:end])
            mentions[target].append(Mention(doc.doc_id, find(start, end), start, end, text))
    return mentions


def canonical_name(forms: Counter, key: str, concept: bool) -> str:
    """The longest form (the full name the entity is keyed by, even if written once, so
    "Sherlock Holmes" beats a frequent "Holmes"), in its most frequent spelling."""
    full = [f for f in forms if normalize_key(f, concept) == key] or list(forms)
    return max(full, key=lambda f: (len(normalize_key(f, concept).split("-")), forms[f],
                                    f[:1].isupper() != concept, len(f), f))


def demote_common_words(groups: dict[str, _Group], docs: list[Document], drops: Drops) -> None:
    """One-word "names" that the documents also write in lower case are common nouns that NER
    labelled at a sentence start or in a title ("Officer", "Ship", "Time"): make them concepts,
    or drop them when generic."""
    words: dict[str, Counter] = {}
    for d in docs:
        words[d.doc_id] = Counter(_WORDS.findall(d.text))
    for key, g in list(groups.items()):
        if not is_named(g.label) or "-" in key:
            continue
        capitalised = [f for f, _ in g.forms.most_common() if f != f.lower()]
        if not capitalised:
            continue
        form = capitalised[0]
        upper = sum(words[d][form] for d in g.docs)
        lower = sum(words[d][form.lower()] for d in g.docs)
        if upper == 0 or lower < 0.5 * upper:
            continue
        if form.lower() in GENERIC_NOUNS or form.lower() in STOP_WORDS:
            drops.add("common word labelled as a name", form)
            del groups[key]
        else:
            g.labels = Counter({CONCEPT: sum(g.labels.values())})


def select(groups: dict[str, _Group], mentions: dict[str, list[Mention]], passages: list[Passage],
           cfg: "RunConfig", drops: Drops) -> tuple[list[Entity], dict[str, float]]:
    min_freq, cap = cfg.entities.min_freq, cfg.entities.max_per_doc
    n_passages = Counter(p.doc_id for p in passages)

    def tier(key: str, n: int) -> int:  # named first; rare named entities (often NER noise) last
        if is_named(groups[key].label):
            return 0 if n >= min_freq else 2
        return 1

    per_doc: dict[str, dict[str, list[Mention]]] = defaultdict(lambda: defaultdict(list))
    for key, ms in mentions.items():
        g = groups[key]
        # min_freq binds common-noun phrases; labelled names and LLM picks are kept if seen once
        if not is_named(g.label) and "llm" not in g.sources and len(ms) < min_freq:
            drops.add("min_freq", g.forms.most_common(1)[0][0])
            continue
        for m in ms:
            per_doc[m.doc_id][key].append(m)
    kept: dict[str, list[Mention]] = defaultdict(list)
    for doc_id, ents in per_doc.items():
        def rank(key: str):
            ms = ents[key]
            spread = len({m.passage_id for m in ms}) / n_passages[doc_id]
            return (tier(key, len(ms)), -len(ms) * spread, key)

        ranked = sorted(ents, key=rank)
        for key in ranked[:cap]:
            kept[key].extend(ents[key])
        for key in ranked[cap:]:
            drops.add("max_per_doc", groups[key].forms.most_common(1)[0][0])

    entities, salience = [], {}
    for key, ms in kept.items():
        g = groups[key]
        forms = Counter(m.text for m in ms)
        name = canonical_name(forms, key, not is_named(g.label))
        # aliases: every surface seen, including merged short names and raw spans ("Holmes's")
        aliases = [a for a, _ in forms.most_common() if a != name]
        aliases += sorted(a for a in g.raw if a not in forms and a != name)
        entities.append(Entity(
            entity_id=key, name=name, label=g.label, aliases=aliases,
            doc_freq=len({m.doc_id for m in ms}), count=len(ms),
            mentions=sorted(ms, key=lambda m: (m.doc_id, m.start)), sources=sorted(g.sources)))
        salience[key] = len(ms) * len({m.passage_id for m in ms})
    entities.sort(key=lambda e: (tier(e.entity_id, e.count), -salience[e.entity_id], e.entity_id))
    return entities, salience
