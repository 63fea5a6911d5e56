"""Answer matching shared by QA evaluation and SELF-GUIDE: one normalisation, one exact match."""

from __future__ import annotations

import re
import string

_STRIP = str.maketrans("", "", string.punctuation + "‘’“”")


def normalize_answer(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = re.sub(r"\b(a|an|the)\b", " ", text.lower().translate(_STRIP))
    return " ".join(text.split())


def map_label(text: str, labels: list[str]) -> str | None:
    """Map a free-text answer onto the label set, or None when it is not one label.

    In order: the whole answer is a label; its first word is a label; exactly one label
    occurs in it as a whole word (so "The answer is 2." maps to "2", but "yes or no" maps to none).
    """
    norm = normalize_answer(text)
    if not norm:
        return None
    by_norm = {normalize_answer(lab): lab for lab in labels}
    if norm in by_norm:
        return by_norm[norm]
    first = norm.split()[0]
    if first in by_norm:
        return by_norm[first]
    found = [lab for key, lab in by_norm.items() if key and re.search(rf"\b{re.escape(key)}\b", norm)]
    return found[0] if len(found) == 1 else None


def exact_match(prediction: str, gold: str, labels: list[str] | None = None, prefix: bool = False) -> bool:
    """The normalised prediction equals the normalised gold answer. With a label set the prediction
    is first mapped onto it ("Entailment." counts for "Entailment"); with `prefix` it may go on after
    the answer (a greedy continuation), but not mid-word."""
    if labels:
        mapped = map_label(prediction, labels)
        return mapped is not None and normalize_answer(mapped) == normalize_answer(gold)
    pred, gold = normalize_answer(prediction), normalize_answer(gold)
    if prefix:
        return bool(gold) and (pred + " ").startswith(gold + " ")
    return pred == gold
