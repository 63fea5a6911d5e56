"""What a stage declares about itself, once: the pipeline (fingerprints, the stage cache), the CLI
(its command and help line), the run report (what is missing) and the docs read these declarations.

A new stage is a module here with ``STAGE = StageSpec(...)``, ``run(cfg) -> summary`` and
``summary_lines(summary)``, and its place in ``stages/__init__.py``'s order (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def never(cfg: "RunConfig") -> bool:
    return False


def no_files(cfg: "RunConfig") -> list[str]:
    return []


@dataclass(frozen=True)
class StageSpec:
    name: str  # its CLI command, its module and its folder under runs/<name>/
    help: str  # the CLI's help line
    sections: tuple[str, ...]  # config sections whose change reruns it (besides `backend`)
    outputs: tuple[str, ...]  # what it writes in its folder; the first is what the run report reads
    cached: bool = True  # kept in the stage cache by fingerprint (a study's recipes share it)
    uses_backend: Callable[["RunConfig"], bool] = never  # calls the `backend:` model: its settings count
    loads_model: Callable[["RunConfig"], bool] | None = None  # loads that model (None: when it uses it)
    external_inputs: Callable[["RunConfig"], list[str]] = no_files  # files outside the run folder it reads

    def inputs(self, cfg: "RunConfig") -> tuple[str, ...]:
        """The config sections in its fingerprint."""
        return self.sections + (("backend",) if self.uses_backend(cfg) else ())

    def needs_model(self, cfg: "RunConfig") -> bool:
        return (self.loads_model or self.uses_backend)(cfg)
