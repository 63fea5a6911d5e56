"""`entigraph study STUDY.yaml`: which recipe teaches my model my documents?

A study names a base run config, recipes (sets of settings: Raw CPT, Rephrase, EntiGraph, a mixture,
LoRA ...), a tuning grid per recipe and a document split. Each recipe is tuned on the tuning
documents, then run on the reporting documents with the settings chosen; stages that runs share
run once (the pipeline's stage cache); everything resumes. The report (study.html, study.md,
study-results.json under runs/<study>/) compares the recipes with intervals and paired tests.

    entigraph study configs/studies/fictional-dev.yaml [--only raw,entigraph] [--report-only]
        [--write-docs docs/results.md] [--set split.reporting.limit_docs=5] [--set set.train.threads=1]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .config import Recipe, StudyConfig
from .runner import SplitError, Study


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    from ..config import load
    from .plan import check_moved_keys

    study = load(StudyConfig, path, overrides)
    check_moved_keys(study)
    return study


def run_study(study: StudyConfig, only: list[str] | None = None, report_only: bool = False,
              write_docs: str | Path | None = None, echo: Callable[[str], None] = print,
              executor: str | None = None) -> dict:
    """Run (or, with report_only, only read) the study, then write its report. Returns the
    report's figures and the paths written under "paths"."""
    from . import report
    from .analysis import Analysis

    s = Study(study, only, echo, executor, execute=not report_only)
    specs = s.run()
    res = Analysis(study, s.dir, specs, s.chosen, s.evidence).run()
    docs_img, d = None, study.docs
    if write_docs and d.comparison:  # one figure per comparison block: two blocks of one study keep theirs
        docs_img = Path(write_docs).parent / "img" / f"study-{study.name}-{d.comparison}-scaling.png"
    paths = report.write(res, s.dir, study.scaling, docs_img)
    if write_docs:
        target = Path(write_docs)
        comparison = report.markdown_comparison(res)
        if docs_img is not None and docs_img.is_file():
            paths["docs_plot"] = docs_img
            link = os.path.relpath(docs_img, target.parent)
            comparison += f"\n![closed-book accuracy against training tokens, {study.name} study]({link})\n"
        for tag, block in ((d.comparison, comparison), (d.tuning, report.markdown_tuning(res)),
                           (d.probes, report.markdown_ranking(res))):
            if tag and block:
                report.splice(target, block, tag)
        paths["docs"] = target
    res["paths"] = {k: str(v) for k, v in paths.items()}
    return res


__all__ = ["Recipe", "SplitError", "Study", "StudyConfig", "load_study", "run_study"]
