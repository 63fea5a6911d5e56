"""Cheap gates: failed generations, empty outputs, cut-off sentences, prompt echo, SELF-GUIDE noise
terms and length bounds."""

from __future__ import annotations

from ..text import echo_share, ends_sentence, length_bounds, noise_found, trim_to_sentence, words
from .base import Filter, Flag

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
