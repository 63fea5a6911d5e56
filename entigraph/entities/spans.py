"""Candidate spans and the normalisation every extractor shares: cleaning, keys, drop reasons."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..records import Entity

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
        # ties by name: insertion order follows set iteration, which differs between processes
        return {r: {"count": sum(c.values()), "examples": sorted(c, key=lambda s: (-c[s], s))[:examples]}
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
