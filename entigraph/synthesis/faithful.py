"""Kept for two callers outside synthesis (pipeline.py, stages/synthesize.py) until they import
``needs_backend`` from synthesis/modes.py and ``NoBackend`` from synthesis/free.py; then it goes.
What it held is split by job: sources.py, free.py, rewrites.py, planner.py, feedback.py."""

from .free import NoBackend
from .modes import needs_backend

__all__ = ["NoBackend", "needs_backend"]
