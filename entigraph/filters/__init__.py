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

Files, one per family: base (context, flag, applying), basic, repetition, grounding, support,
near_dup, judge. A new filter is a Filter subclass in its family's file, exported here, and built
by the filter stage from its config (docs/extending.md).
"""

from .base import Filter, FilterContext, Flag, Outcome, apply_filters, run_filter
from .basic import Echo, Empty, Failed, Length, Noise, Truncated
from .grounding import Grounding
from .judge import Judge
from .near_dup import NearDup
from .repetition import Repetition
from .support import SentenceSupport

__all__ = ["Filter", "FilterContext", "Flag", "Outcome", "apply_filters", "run_filter", "Echo", "Empty", "Failed",
           "Length", "Noise", "Truncated", "Grounding", "Judge", "NearDup", "Repetition", "SentenceSupport"]
