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

import bisect
import dataclasses
import functools
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from tqdm.auto import tqdm

from spacy.lang.en.stop_words import STOP_WORDS

from .errors import ConfigError
from .records import Document, Entity, Mention, Passage

if TYPE_CHECKING:
    from .backends.base import Backend
    from .config import RunConfig

# Number-like and time-like NER labels are attributes of entities ("three days", "fifty-eight"),
# not things to write a passage about: pairing "two" with "Korvin" only yields junk prompts.
# They stay in the text, so synthesis still sees them in context.
ATTRIBUTE_LABELS = {"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"}
# Dates that NER labels EVENT/MISC ("9 November") or a noun chunk keeps ("April"): attributes too.
DATE_WORDS = set("""january february march april may june july august september october november
december monday tuesday wednesday thursday friday saturday sunday""".split())
CONCEPT = "CONCEPT"  # noun phrases and LLM concepts
MISC = "MISC"  # capitalised LLM entities of unknown type
LLM_TYPES = {"person": "PERSON", "people": "PERSON", "place": "LOC", "places": "LOC",
             "location": "LOC", "object": "OBJECT", "objects": "OBJECT", "organization": "ORG",
             "concept": CONCEPT, "concepts": CONCEPT}

ARTICLES = {"the", "a", "an"}
HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "mister", "sir", "madam", "mme", "mlle", "herr"}
# titles before a name ("Senior Lieutenant Cob" is Cob); a title alone ("the Captain") stays
TITLES = set("""captain capt lieutenant lt senior junior commander colonel col general gen major
sergeant sgt admiral ensign officer chief professor prof doctor lady lord madame president senator
governor king queen prince princess uncle aunt saint st father brother sister agent detective""".split())
# Nouns too general to be "what the document is about"; noun phrases headed by them are dropped.
GENERIC_NOUNS = set("""
man men woman women person people guy boy girl child children kid kids one ones other others thing
things something anything nothing everything someone anyone everyone nobody time times way ways day
days night nights year years moment moments minute minutes hour hours second seconds week weeks month
months life lives world place places part parts side sides end kind sort lot lots bit fact facts
case cases point points question questions answer answers matter matters reason reasons idea ideas
number numbers word words name names hand hands eye eyes face faces head heads voice voices foot feet
arm arms mind minds course chance need needs form forms manner sense use result results problem
problems area areas group groups look looks fellow fellows friend friends mr mrs sir lady gentleman
gentlemen yes no none all half rest while deal job jobs business trouble work effort attempt step steps
question issue issues situation position state states way moment instant hurry silence use order
kinds sorts types type example examples piece pieces line lines number amount level levels
""".split())
PRONOUNS = set("""
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its
itself we us our ours ourselves they them their theirs themselves this that these those who whom whose
which what whatever whoever something someone anyone everyone nobody somebody anybody everybody
""".split())
_TRIM = " \t\r\n\"“”‘’'`()[]{},;:!?*_-—–/\\|<>#~"
_POSSESSIVE = re.compile(r"['’]s$|(?<=s)['’]$")
_WORDS = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)
_TOKEN = re.compile(r"\w+(?:['’](?![sS]\b)\w+)*", re.UNICODE)
_GAP = re.compile(r"\s*[-‐–]?\s*")
_ABBREV = re.compile(r"(?:\b[A-Z]|\b(?:Jr|Sr|St|Mr|Mrs|Ms|Dr|Co|Inc|Ltd|Bros|Mt|Ft))\.$")
# lower-case words allowed inside a name ("Comity of Planets"); any other one means a bad span
NAME_CONNECTORS = {"of", "the", "de", "la", "le", "du", "da", "di", "del", "von", "van", "der",
                   "den", "for", "on", "in", "at", "al", "el", "y"}  # not "and": "Strike and Cob" is two
_INNER_PUNCT = re.compile(r"[—–\"“”()\[\],;:!?/]")  # never inside one name


@dataclass
class Candidate:
    """One span an extractor proposed, with offsets into the document text."""

    doc_id: str
    start: int
    end: int
    text: str
    label: str
    source: str  # spacy | llm
    raw: str = ""  # the span before cleaning (kept as an alias: "the Ruler", "Holmes's")
    common: bool = False  # a common noun: its plural merges with its singular


@dataclass
class Drops:
    """Why spans were dropped: reason -> Counter of surface forms (for summary.json)."""

    reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, reason: str, surface: str, n: int = 1) -> None:
        self.reasons[reason][" ".join(surface.split())[:80]] += n

    def summary(self, examples: int = 10) -> dict[str, dict]:
        return {r: {"count": sum(c.values()), "examples": [s for s, _ in c.most_common(examples)]}
                for r, c in sorted(self.reasons.items())}


@dataclass
class ExtractionResult:
    entities: list[Entity]  # sorted: named first, then by salience
    salience: dict[str, float]  # entity_id -> count × passages
    drops: Drops
    failures: list[dict]  # LLM chunks that never parsed
    merged_aliases: int
    seconds: dict[str, float] = field(default_factory=dict)  # per step


# ---------------------------------------------------------------------------------------------
# normalisation


def norm_space(text: str) -> str:
    return " ".join(text.split())


def slug(text: str) -> str:
    """Stable id: lower case, apostrophes dropped ("Tr'en" → "tren"), other runs of non-word → "-"."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("’", "")
    return re.sub(r"[\W_]+", "-", text).strip("-")


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalize_key(surface: str, singular: bool = False) -> str:
    """The grouping key: "Mr. Holmes's" → "holmes", "the Ruler" → "ruler", "lie-detectors" → "lie-detector"."""
    surface = _POSSESSIVE.sub("", surface.strip(_TRIM))
    tokens = slug(surface).split("-")
    while tokens and (tokens[0] in ARTICLES or tokens[0] in HONORIFICS):
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[0] in TITLES and surface[:1].isupper():
        tokens = tokens[1:]
    if singular and tokens:  # common nouns and nationalities ("Martians"), never names
        tokens[-1] = _singular(tokens[-1])
    return "-".join(t for t in tokens if t)


def clean_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim a span in `text` to its name: punctuation, possessive and leading article go."""
    for _ in range(3):  # "the Ruler's," needs a few passes
        while start < end and text[start] in _TRIM:
            start += 1
        while end > start and (text[end - 1] in _TRIM or (
                text[end - 1] == "." and not _ABBREV.search(text, start, end))):
            end -= 1
        m = _POSSESSIVE.search(text, start, end)
        if m and m.end() == end:
            end = m.start()
        m = re.match(r"(?i)(the|an?)\s+", text[start:end])
        if m and m.end() < end - start:
            start += m.end()
    return (start, end) if end > start else None


def is_named(label: str) -> bool:
    return label != CONCEPT


# ---------------------------------------------------------------------------------------------
# spaCy


@functools.lru_cache(maxsize=2)
def load_spacy(name: str, noun_phrases: bool):
    """Only the components we use: the parser (noun chunks) costs ~30 % of the throughput."""
    import spacy

    from .models import resolve_spacy

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


# ---------------------------------------------------------------------------------------------
# LLM

# The EntiGraph entity-extraction prompt (Yang et al. 2024, appendix), asking for strict JSON.
LLM_PROMPT = """As a knowledge analyzer, your task is to dissect and understand an article provided by the user. You are required to perform the following steps:
1. Summarize the Article: Provide a concise summary of the entire article, capturing the main points and themes.
2. Extract Entities: Identify and list all significant "nouns" or entities mentioned within the article. These entities should include but not limited to:
    * People: Any individuals mentioned in the article, using the names or references provided.
    * Places: Both specific locations and abstract spaces relevant to the content.
    * Object: Any concrete object that is referenced by the provided content.
    * Concepts: Any significant abstract ideas or themes that are central to the article's discussion.

Try to exhaust as many entities as possible. Write each entity exactly as it appears in the article. Your response should be structured in a JSON format to organize the information effectively. Ensure that the summary is brief yet comprehensive, and the list of entities is detailed and accurate.

Here is the format you should use for your response:

{
  "summary": "<A concise summary of the article>",
  "entities": ["entity1", "entity2", ...]
}"""


def _first_block(text: str) -> str | None:
    """The first balanced {...} or [...] block (string-aware); an unclosed one is closed."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    stack, in_str, quote, esc = [], False, "", False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            esc = (c == "\\") and not esc
            if c == quote and not esc:
                in_str = False
            continue
        if c in "\"":
            in_str, quote, esc = True, c, False
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if stack and stack[-1] == c:
                stack.pop()
            if not stack:
                return text[start:i + 1]
    # truncated output (max_new_tokens): cut back to the last complete item and close it
    body = text[start:]
    body = body[:max(body.rfind('",'), body.rfind('"]'), body.rfind('}'), 0) + 1] if in_str else body
    body = body.rstrip().rstrip(",")
    need = []
    for c in body:  # recount brackets outside strings, roughly
        if c in "{[":
            need.append("}" if c == "{" else "]")
        elif c in "}]" and need:
            need.pop()
    return body + "".join(reversed(need))


def _loads_lenient(block: str):
    attempts = [block, re.sub(r",\s*([}\]])", r"\1", block)]
    # single quotes used as JSON quotes ('a', 'b'), but not apostrophes inside words (Tr'en)
    attempts.append(re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", '"', attempts[1]))
    for a in attempts:
        try:
            return json.loads(a)
        except json.JSONDecodeError:
            continue
    raise ValueError("no valid JSON block")


def _names_from(obj) -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        for key in ("entities", "Entities", "entity", "nouns"):
            if key in obj:
                return _names_from(obj[key])
        if all(isinstance(v, list) for v in obj.values()) and obj:  # {"people": [...], "places": [...]}
            return [(n, t or k) for k, v in obj.items() for n, t in _names_from(v)]
        for key in ("name", "entity", "text"):
            if isinstance(obj.get(key), str):
                return [(obj[key], str(obj.get("type", "")))]
        return []
    if isinstance(obj, list):
        return [pair for item in obj for pair in _names_from(item)]
    if isinstance(obj, str):
        return [(obj, "")]
    return []


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?:\*\*)?(.+?)(?:\*\*)?\s*$", re.M)


def parse_llm_entities(text: str) -> list[tuple[str, str]]:
    """(name, type) pairs from an LLM answer; tolerant of fences, trailing commas, single quotes,
    prose around the JSON, truncated output, and plain bulleted/numbered lists.

    Raises ValueError when nothing usable is found (the caller retries, then records a failure).
    """
    text = re.sub(r"```(?:json|JSON)?", "", text)
    block = _first_block(text)
    if block is not None:
        try:
            names = _names_from(_loads_lenient(block))
            names = [(n.strip(), t.strip().lower()) for n, t in names if isinstance(n, str) and n.strip()]
            if names:
                return names
        except ValueError:
            pass
        # a broken JSON list still holds quoted strings after "entities"
        tail = text[text.find('"entities"'):] if '"entities"' in text else ""
        quoted = re.findall(r'"([^"\n]{1,80})"', tail)[1:]
        if quoted:
            return [(q.strip(), "") for q in quoted if q.strip()]
    items = [m.group(1).split(":")[0].strip(" *\"'") for m in _BULLET.finditer(text)]
    items = [i for i in items if 0 < len(i.split()) <= 8]
    if items:
        return [(i, "") for i in items]
    raise ValueError("no JSON object and no list of entities in the answer")


def llm_chunks(passages: list[Passage], budget: int, count_tokens) -> list[tuple[int, int]]:
    """Group consecutive passages of one document into (start, end) spans of ≤ `budget` tokens."""
    out: list[tuple[int, int]] = []
    start = end = used = None
    for p in passages:
        n = count_tokens(p.text)
        if start is not None and used + n > budget:
            out.append((start, end))
            start = None
        if start is None:
            start, used = p.start, 0
        end, used = p.end, used + n
    if start is not None:
        out.append((start, end))
    return out


def find_in_text(text: str, name: str, lo: int = 0, hi: int | None = None) -> tuple[int, int] | None:
    """Case-insensitive, word-bounded search; whitespace in `name` matches any whitespace."""
    tokens = name.split()
    if not tokens:
        return None
    pattern = r"(?<![\w'’])" + r"\s+".join(map(re.escape, tokens)) + r"(?!\w)"
    m = re.compile(pattern, re.I).search(text, lo, len(text) if hi is None else hi)
    return (m.start(), m.end()) if m else None


def llm_candidates(docs: list[Document], passages: list[Passage], cfg: "RunConfig",
                   backend: "Backend", drops: Drops) -> tuple[list[Candidate], list[dict]]:
    from .backends.base import Request

    by_doc = defaultdict(list)
    for p in passages:
        by_doc[p.doc_id].append(p)
    work = [(d, span) for d in docs
            for span in llm_chunks(by_doc[d.doc_id], cfg.entities.llm_chunk_tokens, backend.count_tokens)]
    sampling = dataclasses.replace(cfg.synthesis.sampling, max_new_tokens=cfg.entities.llm_max_new_tokens)
    parsed: dict[int, list[tuple[str, str]]] = {}
    errors: dict[int, str] = {}
    pending = list(range(len(work)))
    bs = max(1, cfg.synthesis.batch_size)
    for attempt in range(1 + max(0, cfg.entities.llm_retries)):
        if not pending:
            break
        gens = []
        desc = "LLM entities" + (f" (retry {attempt})" if attempt else "")
        for b in tqdm(range(0, len(pending), bs), desc=desc, unit="batch", leave=False):
            reqs = []
            for k in pending[b:b + bs]:
                doc, (s, e) = work[k]
                user = f"### Article: {doc.title}\n\n{doc.text[s:e]}"
                reqs.append(Request([{"role": "system", "content": LLM_PROMPT},
                                     {"role": "user", "content": user}],
                                    sampling, seed=cfg.seed + 7919 * attempt + k))
            gens.extend(backend.generate(reqs))
        still = []
        for k, gen in zip(pending, gens):
            if gen.finish_reason == "error":
                errors[k] = f"backend error: {gen.error}"
            else:
                try:
                    parsed[k] = parse_llm_entities(gen.text)
                    continue
                except ValueError as e:
                    errors[k] = f"{e}; answer began {gen.text[:80]!r}"
            still.append(k)
        pending = still
    failures = [{"doc_id": work[k][0].doc_id, "start": work[k][1][0], "end": work[k][1][1],
                 "attempts": 1 + max(0, cfg.entities.llm_retries), "error": errors[k]} for k in pending]

    out: list[Candidate] = []
    for k, names in parsed.items():
        doc, (s, e) = work[k]
        for name, kind in names:
            name = norm_space(name.strip(_TRIM))
            if not name or len(name.split()) > 8:
                drops.add("llm: empty or too long", name)
                continue
            if name.lower() in PRONOUNS or name.lower() in GENERIC_NOUNS:
                drops.add("llm: pronoun or generic noun", name)
                continue
            # the chunk first (the mention the model saw), then anywhere in the document
            span = find_in_text(doc.text, name, s, e) or find_in_text(doc.text, name)
            span = span and clean_span(doc.text, *span)
            if not span:
                drops.add("llm: hallucinated (not in the document)", name)
                continue
            surface = doc.text[span[0]:span[1]]
            label = LLM_TYPES.get(kind, "")
            if not label:
                label = MISC if all(w[:1].isupper() for w in surface.split()) else CONCEPT
            out.append(Candidate(doc.doc_id, span[0], span[1], surface, label, "llm",
                                 common=label == CONCEPT and surface.split()[-1].islower()))
    return out, failures


# ---------------------------------------------------------------------------------------------
# grouping, alias merging, re-matching, selection


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
