"""Source-anchored rewrites: the LLM restates given source units in one form.

``explain``, ``quiz``, ``dialogue``, ``list``, ``timeline``, ``notes`` restate a window of
``rewrite_units`` consecutive source sentences; two tilings of a document (the second shifted by
half a window) give every sentence two windows. ``active_reading``'s second step applies one
proposed strategy to a section (synthesis/planner.py proposes them). The prompt's context is the
units themselves, each made to read alone.
"""

from __future__ import annotations

from collections.abc import Callable

from ..facts.units import SourceUnit
from .prompts import Template


def windows(units: list[SourceUnit], n: int) -> list[list[SourceUnit]]:
    """Windows of `n` consecutive units of one document: one tiling, then one shifted by half a window."""
    spans = [(a, min(a + n, len(units))) for a in range(0, len(units), n)]
    shift = (n + 1) // 2
    if n > 1 and len(units) > n:
        spans += [(a, min(a + n, len(units))) for a in range(shift, len(units), n)
                  if (a, min(a + n, len(units))) not in spans]
    return [units[a:b] for a, b in spans]


def window_key(doc_id: str, window: list[SourceUnit]) -> str:
    return f"{doc_id}:w{window[0].index}-{window[-1].index}"


def messages(template: Template, title: str, units: list[SourceUnit], text_of: Callable[[list[SourceUnit]], str],
             entities: list[str], strategy: str = "") -> list[dict[str, str]]:
    """The prompt of a rewrite (or an Active Reading application): the units, in reading order, as
    the context; the strategy to apply for active_reading."""
    return template.render(title=title, context=context(units, text_of), entities=entities, strategy=strategy)


def context(units: list[SourceUnit], text_of: Callable[[list[SourceUnit]], str]) -> str:
    """The units in reading order, each made to read alone: what the prompt quotes."""
    return text_of(sorted(units, key=lambda u: (u.doc_id, u.index)))
