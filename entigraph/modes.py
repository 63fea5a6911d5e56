"""The synthesis modes, declared once: what each is and what it needs (a leaf: config.py imports it).

Kinds:
- ``entigraph``: EntiGraph's (Yang et al., 2024): the LLM writes about a document (``summary``),
  an entity pair or triple of the graph, or rephrases a passage. A template each.
- ``free``: generator-free: built from the source's own sentences, with provenance; no model,
  no template (synthesis/free.py, entigraph/facts/transforms.py).
- ``rewrite``: the LLM restates a window of consecutive source sentences in one form (a template each).
- ``active_reading``: the LLM proposes study strategies for a section, then applies each (two templates).

Adding a mode: declare it here; an LLM mode ships ``templates/<name>.txt``; a generator-free one
is built in free.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    kind: str  # entigraph | free | rewrite | active_reading
    about: str

    @property
    def generator_free(self) -> bool:
        return self.kind == "free"

    @property
    def unit_anchored(self) -> bool:
        """Its tasks are built over source units (synthesis/sources.py), not entity tuples of the graph."""
        return self.kind != "entigraph"


REGISTRY: tuple[Mode, ...] = (
    Mode("summary", "entigraph", "a summary of a document naming its most salient entities"),
    Mode("pair", "entigraph", "how two entities of a document relate"),
    Mode("triple", "entigraph", "how three entities of a document relate"),
    Mode("rephrase", "entigraph", "a passage rephrased (WRAP-style)"),
    Mode("permute", "free", "a section's sentences in a new order"),
    Mode("profile", "free", "every sentence about an entity"),
    Mode("reading", "free", "a section followed by questions and clozes mined from it"),
    Mode("qa", "free", "question-answer pairs, each answer followed by the sentence that states it"),
    Mode("relation", "free", "for a pair or triple of the graph: the sentences that mention them together, "
                             "then each one's own"),
    Mode("walk", "free", "sentences chained along a path A-B-C of co-mentions, across documents"),
    Mode("explain", "rewrite", "a window of sentences explained"),
    Mode("quiz", "rewrite", "a window of sentences as a quiz with answers"),
    Mode("dialogue", "rewrite", "a window of sentences as a dialogue"),
    Mode("list", "rewrite", "a window of sentences as a list of facts"),
    Mode("timeline", "rewrite", "a window of sentences as a timeline"),
    Mode("notes", "rewrite", "a window of sentences as study notes"),
    Mode("active_reading", "active_reading", "study strategies proposed for a section, then applied"),
)
BY_NAME = {m.name: m for m in REGISTRY}
NAMES = tuple(m.name for m in REGISTRY)  # config's SynthesisMode
LLM_MODES = tuple(m.name for m in REGISTRY if not m.generator_free)  # each has a template
GENERATOR_FREE = tuple(m.name for m in REGISTRY if m.generator_free)
REWRITES = tuple(m.name for m in REGISTRY if m.kind == "rewrite")
UNIT_MODES = tuple(m.name for m in REGISTRY if m.unit_anchored)


def needs_backend(modes: Iterable[str]) -> bool:
    """Whether any mode asked for is written by a model."""
    return any(m not in GENERATOR_FREE for m in modes)


def needs_units(modes: Iterable[str], strategy: str) -> bool:
    """Whether the sampler needs the corpus's source units (synthesis/sources.py)."""
    return strategy == "units" or any(m in UNIT_MODES for m in modes)
