"""The pipeline's stages, one module each, named as the stage and as its folder under runs/<name>/.

Each module has ``run(cfg) -> summary`` and ``summary_lines(summary)``; heavy libraries (torch,
transformers) are imported inside ``run`` so that loading the pipeline stays cheap.
"""

from . import eval, extract, filter, report, synthesize, train  # noqa: A004 (stage names)

__all__ = ["extract", "synthesize", "filter", "train", "eval", "report"]
