"""The pipeline's stages, one module each, in the order they run.

Each module declares itself (``STAGE``, a ``spec.StageSpec``) and has ``run(cfg) -> summary`` and
``summary_lines(summary)``; heavy libraries (torch, transformers) are imported inside ``run`` so that
loading the pipeline stays cheap.
"""

from types import ModuleType

from . import eval, extract, filter, report, synthesize, train  # noqa: A004 (stage names)
from .spec import StageSpec

MODULES: tuple[ModuleType, ...] = (extract, synthesize, filter, train, eval, report)  # the order they run
PIPELINE: tuple[StageSpec, ...] = tuple(m.STAGE for m in MODULES)
STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
BY_NAME: dict[str, StageSpec] = {s.name: s for s in PIPELINE}
MODULE: dict[str, ModuleType] = {m.STAGE.name: m for m in MODULES}

__all__ = ["MODULES", "PIPELINE", "STAGES", "BY_NAME", "MODULE", "StageSpec"]
