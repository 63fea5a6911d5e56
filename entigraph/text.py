"""Word, sentence and name helpers shared by the filters, the data report and the support checks.

Everything here is plain regex work on strings: no models, cheap enough for every passage.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Iterable

_WORD = re.compile(r"\w+")
# A sentence ends with . ! or ? and optional closing quotes/brackets, before whitespace or the end.
_SENT_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s|$)")
_SENT_END_AT_END = re.compile(r"[.!?][\"'”’)\]]*$")
ECHO_N = 8  # prompt echo is measured on word 8-grams


def words(text: str) -> list[str]:
    """Lowercase word tokens: the unit of every n-gram statistic here."""
    return _WORD.findall(text.lower())


def ngram_hashes(tokens: list[str], n: int) -> list[int]:
    """Hashes of word n-grams (in-process only: Python salts str hashes per process)."""
    return [hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)]


def ends_sentence(text: str) -> bool:
    return bool(_SENT_END_AT_END.search(text.rstrip()))


def trim_to_sentence(text: str) -> str:
    """The text up to its last sentence end ('' when there is none)."""
    ends = list(_SENT_END.finditer(text))
    return text[:ends[-1].end()].rstrip() if ends else ""


_TOKEN_GAP = re.compile(r"([A-Za-z][\w’'-]*)([^A-Za-z]*)")
_TITLE = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Prof|Capt|Col|Gen|Lt|Sgt|Rev|Jr|Sr)\.")
TITLES = frozenset("mr mrs ms dr st prof capt col gen lt sgt rev jr sr".split())  # lower case, as in _TITLE
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n+|:\s+")
# Capitalised words that are not names (the pronoun I and its contractions).
_NOT_NAMES = {"i", "i'm", "i'd", "i'll", "i've", "i’m", "i’d", "i’ll", "i’ve"}


def name_candidates(text: str) -> list[str]:
    """Candidate names: runs of capitalised words, minus the first word of each sentence.

    A cheap stand-in for NER: on this machine the regex handles ~80x more words per second than
    spaCy tok2vec+ner (340k vs 4k words/s on the demo corpus), and a lowercase corpus
    vocabulary is all it is checked against. "Marit Ellery said" at a sentence start yields
    "Ellery"; "the Harbour Board" mid-sentence yields "Harbour Board".
    """
    spans = []
    text = _TITLE.sub(r"\1", text)  # "Dr. Sarah Johnson" is not two sentences
    for sentence in _SENTENCE_SPLIT.split(text):
        run: list[str] = []
        adjacent = False  # only whitespace between the previous word and this one
        # (word, what follows it up to the next word) pairs: one C-level findall, no match objects
        for i, (tok, gap) in enumerate(_TOKEN_GAP.findall(sentence)):
            if tok.endswith(("'s", "’s")):
                tok = tok[:-2]
            capital = tok[0].isupper() and tok.lower() not in _NOT_NAMES
            if run and not (capital and adjacent):
                spans.append(run)
                run = []
            if capital:
                run.append(tok if i else "")  # "" marks the sentence-initial word, removed below
            adjacent = not gap.strip()
        if run:
            spans.append(run)
    return [" ".join(t for t in span if t) for span in spans if any(span)]


# ---------------------------------------------------------------------------------------------
# Sentences with offsets, numbers and content words (the support checks in entigraph/facts)

# A candidate sentence end: . ! or ? (and closing quotes/brackets) before whitespace.
_END_CANDIDATE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
# A period after a title or an initial ends no sentence ("Dr. Vale", "J. Pell", "U.S. Army").
_NO_END_BEFORE = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Prof|Capt|Col|Gen|Lt|Sgt|Rev|Mt|No|vs|e\.g|i\.e)|\b[A-Z])\.$")


_LIST_MARKER = re.compile(r"\s*(?:\d{1,3}[.)]|[-*•]+)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentences of `text`, whitespace trimmed.

    A line break always ends a sentence; . ! ? end one when the next word does not start in lower
    case ("Zaronix Ltd. employs" is one sentence, "... of Zaronix Ltd. Under his leadership" two)
    and the period does not follow a title or an initial.
    """
    cuts = [0]
    for m in _END_CANDIDATE.finditer(text):
        nxt = text[m.end():m.end() + 80].lstrip()
        if nxt[:1].islower() or (m.group()[0] == "." and _NO_END_BEFORE.search(text, max(0, m.start() - 8), m.start() + 1)):
            continue
        if _LIST_MARKER.fullmatch(text, text.rfind("\n", 0, m.start()) + 1, m.end()):  # "1. First item"
            continue
        cuts.append(m.end())
    cuts += [m.start() for m in re.finditer(r"\n", text)]
    cuts = sorted(set(cuts)) + [len(text)]
    spans = []
    for a, b in itertools.pairwise(cuts):
        chunk = text[a:b]
        lead = len(chunk) - len(chunk.lstrip())
        trail = len(chunk.rstrip())
        if trail > lead:
            spans.append((a + lead, a + trail))
    return spans


_OPENING_RUN = re.compile(r"[\"'“‘(]*([A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*)")


def opening_name(sentence: str, lower_vocab: set[str] | None = None) -> str | None:
    """The capitalised run that opens a sentence when it is likely a name: two or more words
    ("Zorblax Venn founded"), or one word never written in lower case in `lower_vocab`
    ("Tianjin, a city"; not "Under his leadership"). Never a run opened by a function word."""
    m = _OPENING_RUN.match(sentence)
    if not m:
        return None
    toks = words(m.group(1))
    if not toks or toks[0] in FUNCTION_WORDS:
        return None
    if len(m.group(1).split()) >= 2 or (lower_vocab is not None and toks[0] not in lower_vocab):
        return re.sub(r"['’]s$", "", m.group(1))
    return None


def drop_contained(names: list[str]) -> list[str]:
    """Names without those whose words lie inside a longer one ("Gorsky" beside "Alex Gorsky"),
    one per word sequence, in order."""
    keys = {" ".join(words(n)): n for n in names if words(n)}
    sets = {k: set(k.split()) for k in keys}
    return [n for k, n in keys.items() if not any(o != k and sets[k] < sets[o] for o in sets)]


def sentence_names(sentence: str, lower_vocab: set[str] | None = None,
                   candidates: list[str] | None = None) -> list[str]:
    """``name_candidates`` (pass them when already computed) plus the opening name (``opening_name``)."""
    first = opening_name(sentence, lower_vocab)
    names = ([first] if first else []) + (name_candidates(sentence) if candidates is None else candidates)
    return drop_contained(names) if len(names) > 1 else names


def strip_list_marker(sentence: str) -> str:
    """ "2. Growth in 2010." -> "Growth in 2010.": a list number states nothing."""
    m = _LIST_MARKER.match(sentence)
    return sentence[m.end():].lstrip() if m and sentence[m.end():m.end() + 1].isspace() else sentence


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r",(?=\d{3}\b)")


def numbers(text: str) -> list[str]:
    """Numbers written in digits, thousands separators dropped ("6,000" -> "6000", "1990s" -> "1990")."""
    return [_THOUSANDS.sub("", m.group()).rstrip(".,") for m in _NUMBER.finditer(text)]


# Function words: they carry no fact, so support is measured on the other words.
FUNCTION_WORDS = frozenset("""
a about above across after again against all almost along already also although always am among an
and another any anyone anything are around as at be became because become becomes been before being
below beside besides between both but by can could did do does doing done down during each either
else even ever every few for from further had has have having he her here hers herself him himself his
how however i if in into is it its itself just least less many may me might mine more most much must
my myself neither no nor not now of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps rather same several shall she should since so some such than that
the their theirs them themselves then there therefore these they this those though through thus to
together too toward towards under until up upon us very via was we well were what whatever when where
whereas whether which while who whom whose why will with within without would yet you your yours
yourself s t d ll m re ve
despite unlike like following according amid amidst throughout beyond near inside outside regarding
including except behind beneath furthermore moreover additionally meanwhile nevertheless nonetheless
hence instead indeed
""".split())


STEM_CHARS = 6  # chosen on the tuning documents (docs/faithful.md)


def stem(word: str) -> str:
    """A crude stem, the first STEM_CHARS letters ("established", "establishment" -> "establ"):
    paraphrases that change a word's ending still share it."""
    return word[:STEM_CHARS]


def content_words(text: str) -> list[str]:
    """Stemmed words that are neither function words nor numbers, in order (repeats kept)."""
    return [stem(w) for w in words(text) if len(w) > 1 and w not in FUNCTION_WORDS and not w.isdigit()]

def noise_found(text: str, terms: Iterable[str]) -> list[str]:
    """The noise terms that occur in `text` (shared with SELF-GUIDE's example gates)."""
    return [t for t in terms if t and t in text]


def length_bounds(lengths: list[int], sigma: float, ddof: int = 0) -> tuple[float, float]:
    """mean ± sigma·sd of a reference distribution of lengths. ddof=1 (sample sd) for a handful of
    seed examples (SELF-GUIDE); ddof=0 for the many outputs of a synthesis run."""
    mean = statistics.fmean(lengths)
    sd = 0.0 if len(lengths) <= ddof else (statistics.stdev if ddof else statistics.pstdev)(lengths)
    return mean - sigma * sd, mean + sigma * sd


def invented_names(text: str, vocab: set[str]) -> tuple[list[str], list[str]]:
    """(candidate names, invented ones): a name is invented when one of its words occurs nowhere
    in the corpus. Quoting the source therefore never counts as invention."""
    candidates = name_candidates(text)
    invented = [c for c in candidates if any(w not in vocab for w in words(c))]
    return candidates, invented


def echo_share(text: str, prompt: str, corpus_grams: set[int]) -> float:
    """Share of the output's word 8-grams that occur in the prompt but not in the corpus: copied
    from the instructions/template. Copying the source context is measured as copy rate instead."""
    out = ngram_hashes(words(text), ECHO_N)
    if not out or not prompt:
        return 0.0
    template = set(ngram_hashes(words(prompt), ECHO_N)) - corpus_grams
    return sum(g in template for g in out) / len(out)
