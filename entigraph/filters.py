"""Quality gates for synthetic passages: small steps, cheap to expensive, that say why they drop.

Each filter takes its thresholds in its constructor (the filter stage builds them from the
config) and has a ``name`` and ``run(passages, ctx) -> list[Flag | None]``: ``None`` keeps the
passage, a ``Flag`` drops it with a reason that states the measured value and the threshold, and a
``Flag`` carrying ``text`` repairs it instead (the truncation filter trims a passage cut at the
token limit back to its last full sentence; the support gate removes unsupported sentences).
``apply_filters`` drops each passage at the first filter that rejects it, and also counts how many
passages each filter would flag on its own.

Order (cheap to expensive): failed, empty, truncated, support (optional: sentence by sentence
against the passage's source context), echo, noise, length, repetition, grounding, near_dup,
judge (optional).

Generator-free passages (permute, profile, reading, qa) are the source's own sentences, copied
and repeated on purpose: only ``failed`` and ``empty`` judge them (``Filter.all_modes``); the
other filters pass them untouched (near_dup would otherwise drop a document's second permutation,
length a short question-answer pair).
"""

from __future__ import annotations

import copy
import re
import statistics
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .backends.base import Backend, Request
from .config import SamplingConfig
from .records import Document, Entity, Passage, SynthPassage
from .synthesis.prompts import GENERATOR_FREE
from .text import ECHO_N, ends_sentence, name_candidates, ngram_hashes, trim_to_sentence, words

# ---------------------------------------------------------------------------------------------
# Shared context: what the filters compare passages against


@dataclass
class EntityIndex:
    """Surface forms (canonical names and aliases, as word sequences) -> entity ids."""

    forms: dict[str, set[str]] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)  # lowercase name -> its forms
    max_len: int = 1

    @classmethod
    def build(cls, entities: Iterable[Entity]) -> "EntityIndex":
        index = cls()
        for ent in entities:
            forms = {" ".join(words(s)) for s in [ent.name, *ent.aliases]} - {""}
            for form in forms:
                index.forms.setdefault(form, set()).add(ent.entity_id)
                index.max_len = max(index.max_len, len(form.split()))
            index.by_name.setdefault(ent.name.lower(), set()).update(forms)
        return index

    def grams(self, text: str) -> set[str]:
        toks = words(text)
        n_max = min(self.max_len, 8)
        return {" ".join(toks[i:i + n]) for n in range(1, n_max + 1) for i in range(len(toks) - n + 1)}

    def found(self, text: str) -> set[str]:
        """Ids of the entities mentioned in `text` by name or alias."""
        return {eid for g in self.grams(text) & self.forms.keys() for eid in self.forms[g]}

    def mentioned(self, name: str, grams: set[str]) -> bool:
        forms = self.by_name.get(name.lower()) or {" ".join(words(name))}
        return bool(forms & grams)


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
        from .facts.units import name_forms  # facts.units imports this module

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


# ---------------------------------------------------------------------------------------------
# Filters


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


class Failed(Filter):
    name = "failed"
    all_modes = True

    def check(self, p, ctx):
        if p.status != "ok" or p.finish_reason == "error":
            return Flag(f"generation failed: {p.error or p.status}")
        return None


class Empty(Filter):
    name = "empty"
    all_modes = True

    def check(self, p, ctx):
        return None if words(p.text) else Flag("no words in the output")


class Truncated(Filter):
    """Cut at the token limit mid-sentence: trim to the last full sentence, or drop if too short."""

    name = "truncated"

    def __init__(self, min_words: int):
        self.min_words = min_words

    def check(self, p, ctx):
        if p.finish_reason != "length" or ends_sentence(p.text):
            return None
        trimmed = trim_to_sentence(p.text)
        n = len(trimmed.split())
        if n >= self.min_words:
            return Flag(f"cut mid-sentence at the token limit; trimmed to the last full sentence "
                        f"({len(p.text.split())} -> {n} words)", text=trimmed)
        return Flag(f"cut mid-sentence at the token limit; {n} words before the last sentence end "
                    f"(min_words {self.min_words})")


def echo_share(text: str, prompt: str, corpus_grams: set[int]) -> float:
    """Share of the output's word 8-grams that occur in the prompt but not in the corpus: copied
    from the instructions/template. Copying the source context is measured as copy rate instead."""
    out = ngram_hashes(words(text), ECHO_N)
    if not out or not prompt:
        return 0.0
    template = set(ngram_hashes(words(prompt), ECHO_N)) - corpus_grams
    return sum(g in template for g in out) / len(out)


class Echo(Filter):
    name = "echo"

    def __init__(self, threshold: float):
        self.threshold = threshold

    def check(self, p, ctx):
        share = echo_share(p.text, p.prompt, ctx.corpus_grams)
        if share > self.threshold:
            return Flag(f"{share:.0%} of output 8-grams copied from the prompt's instructions "
                        f"(echo_threshold {self.threshold:.0%})")
        return None


def noise_found(text: str, terms: Iterable[str]) -> list[str]:
    """The noise terms that occur in `text` (shared with SELF-GUIDE's example gates)."""
    return [t for t in terms if t and t in text]


def length_bounds(lengths: list[int], sigma: float, ddof: int = 0) -> tuple[float, float]:
    """mean ± sigma·sd of a reference distribution of lengths. ddof=1 (sample sd) for a handful of
    seed examples (SELF-GUIDE); ddof=0 for the many outputs of a synthesis run."""
    mean = statistics.fmean(lengths)
    sd = 0.0 if len(lengths) <= ddof else (statistics.stdev if ddof else statistics.pstdev)(lengths)
    return mean - sigma * sd, mean + sigma * sd


class Noise(Filter):
    """SELF-GUIDE noise terms: assistant chatter, template markers, stray backslashes."""

    name = "noise"

    def __init__(self, terms: list[str]):
        self.terms = list(terms)

    def check(self, p, ctx):
        found = noise_found(p.text, self.terms)
        return Flag(f"contains noise term(s) {', '.join(map(repr, found))}") if found else None


MIN_REFERENCE = 5  # fewer reference lengths than this: only min_words applies


class Length(Filter):
    """SELF-GUIDE length filter: word count within mean ± length_sigma·σ of a reference
    distribution, and at least min_words. Reference `source`: the source passages' word counts;
    `accepted`: the outputs that reached this filter (those accepted by the earlier filters)."""

    name = "length"

    def __init__(self, min_words: int, sigma: float, reference: str):
        self.min_words, self.sigma, self.reference = min_words, sigma, reference

    def run(self, passages, ctx):
        if self.reference == "source":
            ref = ctx.source_lengths
        else:
            ref = [len(p.text.split()) for p in passages if p.status == "ok" and p.text.strip()]
        lo = hi = None
        if len(ref) >= MIN_REFERENCE:
            lo, hi = length_bounds(ref, self.sigma)
        flags: list[Flag | None] = []
        for p in passages:
            n = len(p.text.split())
            if n < self.min_words:
                flags.append(Flag(f"{n} words < min_words {self.min_words}"))
            elif lo is not None and not lo <= n <= hi:
                flags.append(Flag(f"{n} words outside mean ± {self.sigma:g}σ of the "
                                  f"{self.reference} lengths [{lo:.0f}, {hi:.0f}]"))
            else:
                flags.append(None)
        return flags


def dup_line_ratio(text: str) -> float:
    """Gopher: share of non-empty lines that repeat an earlier line."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


def top_ngram_share(tokens: list[str], n: int, n_chars: int) -> float:
    """Gopher: characters covered by the most frequent word n-gram / characters of the text."""
    grams = Counter(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    if not grams or not n_chars:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count / n_chars if count > 1 else 0.0


def dup_ngram_share(tokens: list[str], n: int, n_chars: int) -> float:
    """Gopher: characters in word n-grams that repeat an earlier n-gram (non-overlapping) / chars."""
    seen, repeated, i = set(), 0, 0
    while i < len(tokens) - n + 1:
        gram = " ".join(tokens[i:i + n])
        if gram in seen:
            repeated += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated / n_chars if n_chars else 0.0


class Repetition(Filter):
    """Gopher repetition rules (Rae et al. 2021, Table A1): duplicate lines, most frequent 2/3/4-gram
    character share, and character share of duplicated 4-grams."""

    name = "repetition"

    def __init__(self, max_dup_line_ratio: float, max_top_ngram_share: list[float], max_dup_ngram_ratio: float):
        self.max_dup_line_ratio, self.max_dup_ngram_ratio = max_dup_line_ratio, max_dup_ngram_ratio
        self.max_top_ngram_share = list(max_top_ngram_share)  # for 2-, 3- and 4-grams

    def check(self, p, ctx):
        ratio = dup_line_ratio(p.text)
        if ratio > self.max_dup_line_ratio:
            return Flag(f"duplicate line ratio {ratio:.2f} > {self.max_dup_line_ratio}")
        toks, n_chars = words(p.text), len(p.text)
        for n, limit in zip((2, 3, 4), self.max_top_ngram_share):
            share = top_ngram_share(toks, n, n_chars)
            if share > limit:
                return Flag(f"top {n}-gram covers {share:.2f} of characters > {limit}")
        share = dup_ngram_share(toks, 4, n_chars)
        if share > self.max_dup_ngram_ratio:
            return Flag(f"duplicated 4-grams cover {share:.2f} of characters > {self.max_dup_ngram_ratio}")
        return None


def invented_names(text: str, vocab: set[str]) -> tuple[list[str], list[str]]:
    """(candidate names, invented ones): a name is invented when one of its words occurs nowhere
    in the corpus. Quoting the source therefore never counts as invention."""
    candidates = name_candidates(text)
    invented = [c for c in candidates if any(w not in vocab for w in words(c))]
    return candidates, invented


class Grounding(Filter):
    """The sampled entities (or an alias) must appear, and few names may be invented.

    Pair and triple passages must mention every sampled entity (their relation is the point);
    summaries and rephrasings, whose entity list is a hint, at least one of them. Passages of
    `sentence_gated` modes (the support gate has already removed every sentence with a name absent
    from the source) skip the invented-name check."""

    name = "grounding"

    def __init__(self, require_entities: bool, max_invented_rate: float, sentence_gated: Iterable[str] = ()):
        self.require_entities, self.max_invented_rate = require_entities, max_invented_rate
        self.sentence_gated = frozenset(sentence_gated)

    def check(self, p, ctx):
        if self.require_entities and p.entities:
            grams = ctx.entities.grams(p.text)
            missing = [e for e in p.entities if not ctx.entities.mentioned(e, grams)]
            if missing and (p.mode in ("pair", "triple") or len(missing) == len(p.entities)):
                return Flag(f"sampled entities not mentioned: {', '.join(missing)}")
        if p.mode in self.sentence_gated:
            return None
        candidates, invented = invented_names(p.text, ctx.vocab)
        if candidates:
            rate = len(invented) / len(candidates)
            if rate > self.max_invented_rate:
                shown = ", ".join(sorted(set(invented))[:5])
                return Flag(f"invented-name rate {rate:.2f} ({len(invented)}/{len(candidates)}: {shown}) "
                            f"> max_invented_rate {self.max_invented_rate}")
        return None


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
        from .facts.support import SupportGate  # facts imports this module

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


SHINGLE_N = 5
CANDIDATE_MARGIN = 0.1  # LSH looks for candidates from threshold - 0.1; each is then verified exactly


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted unique crc32 hashes of the word 5-gram shingles (the whole text when shorter)."""
    toks = words(text)
    shingles = {" ".join(toks[i:i + SHINGLE_N]) for i in range(max(1, len(toks) - SHINGLE_N + 1))}
    return np.unique(np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint32))


class MinHasher:
    """MinHash signatures over shingle hashes. crc32 instead of datasketch's default sha1:
    deterministic across runs and ~1.8x faster here (bench/dedup_minhash.py: hash_speed)."""

    def __init__(self, num_perm: int, seed: int = 1):
        from datasketch import MinHash

        self._cls = MinHash
        self.num_perm, self.seed = num_perm, seed
        self.perms = MinHash(num_perm=num_perm, seed=seed).permutations

    def __call__(self, hashes: np.ndarray):
        m = self._cls(num_perm=self.num_perm, seed=self.seed, permutations=self.perms,
                      scheme="affine32", hashfunc=int)
        m.update_batch(hashes.tolist())
        return m


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter) if len(a) + len(b) else 1.0


def near_duplicates(texts: list[str], threshold: float, num_perm: int,
                    progress: bool = False) -> list[tuple[int, float] | None]:
    """For each text (in order): (index of the earlier kept text it duplicates, Jaccard of their
    shingle sets), or None for a text that is kept. MinHash LSH proposes candidates at a lower
    threshold (threshold - CANDIDATE_MARGIN); the exact Jaccard of the stored shingle hashes
    decides, so no pair below the threshold is ever dropped."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(0.05, threshold - CANDIDATE_MARGIN), num_perm=num_perm)
    hasher = MinHasher(num_perm)
    kept: dict[int, np.ndarray] = {}  # shingle hashes of kept texts (~4 bytes a word)
    out: list[tuple[int, float] | None] = []
    for i, text in enumerate(tqdm(texts, desc="near-dup", disable=not progress, leave=False)):
        hashes = shingle_hashes(text)
        m = hasher(hashes)
        best = None
        for j in sorted(lsh.query(m)):
            sim = jaccard(hashes, kept[j])
            if sim >= threshold and (best is None or sim > best[1]):
                best = (j, sim)
        if best is None:
            lsh.insert(i, m, check_duplication=False)
            kept[i] = hashes
        out.append(best)
    return out


class NearDup(Filter):
    """MinHash LSH on word 5-grams; the first passage in seq order is kept, later ones dropped."""

    name = "near_dup"

    def __init__(self, threshold: float, num_perm: int):
        self.threshold, self.num_perm = threshold, num_perm

    def run(self, passages, ctx):
        hits = near_duplicates([p.text for p in passages], self.threshold, self.num_perm,
                               progress=len(passages) > 2000)
        return [None if h is None else Flag(
            f"near-duplicate of {passages[h[0]].task_id} (5-gram Jaccard {h[1]:.2f} >= "
            f"{self.threshold})") for h in hits]


JUDGE_PROMPT = """Context:
{context}

Passage:
{passage}

Is every statement in the passage supported by the context? Rate the passage's faithfulness to the \
context from 1 (mostly invented or contradicted) to 5 (fully supported). Answer with a single digit."""
_SCORE = re.compile(r"\b([1-5])\b")


def parse_score(text: str) -> int | None:
    m = _SCORE.search(text)
    return int(m.group(1)) if m else None


class Judge(Filter):
    """LLM judge of faithfulness to the given context (1-5), greedy decoding. A reply without a
    score keeps the passage (a judge failure is not evidence against it) and is recorded."""

    name = "judge"
    expensive = True

    def __init__(self, threshold: int, batch_size: int):
        self.threshold, self.batch_size = threshold, batch_size
        self.scores: dict[str, int | None] = {}
        self.unparseable: list[dict] = []

    def run(self, passages, ctx):
        if ctx.judge is None:
            raise ValueError("filter.judge is on but no judge backend was given")
        sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=8)
        requests = [Request(messages=[{"role": "user", "content": JUDGE_PROMPT.format(
            context="\n\n".join(ctx.source.get(pid, "") for pid in p.passage_ids), passage=p.text)}],
            sampling=sampling, seed=0) for p in passages]
        gens = []
        for i in tqdm(range(0, len(requests), self.batch_size), desc="judge", leave=False):
            gens += ctx.judge.generate(requests[i:i + self.batch_size])
        flags: list[Flag | None] = []
        threshold = self.threshold
        for p, g in zip(passages, gens):
            score = None if g.error else parse_score(g.text)
            self.scores[p.task_id] = score
            if score is None:
                self.unparseable.append({"task_id": p.task_id, "reply": g.text[:200], "error": g.error})
                flags.append(None)
            else:
                flags.append(Flag(f"judge score {score} < judge_threshold {threshold}")
                             if score < threshold else None)
        return flags


# ---------------------------------------------------------------------------------------------
# Applying the filters


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
