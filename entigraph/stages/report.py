"""The report stage: runs/<name>/report.html from whatever the other stages wrote (missing parts are
named), and the artifacts other tools read: the kept corpus as a dataset with its card, the model card
(entigraph/export.py)."""

from __future__ import annotations

from ..config import RunConfig
from ..io import atomic_path
from . import eval, extract, filter, synthesize, train  # noqa: A004 (stage names)
from .spec import StageSpec

# the stages whose outputs the page shows (each by its first declared output), in the page's order
SHOWN = (extract.STAGE, synthesize.STAGE, filter.STAGE, train.STAGE, eval.STAGE)

STAGE = StageSpec(
    "report", "write runs/<name>/report.html",
    sections=(),
    outputs=(),  # the page is runs/<name>/report.html; the folder holds only its marker
    cached=False,  # the page names its run: cheap to redo, wrong to share
)


def run(cfg: RunConfig) -> dict:
    from ..evaluation.report import render
    from ..export import export_corpus, model_card

    page = render(cfg)
    path = cfg.out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    missing = [s.name for s in SHOWN if not (cfg.out / s.name / s.outputs[0]).is_file()]
    exported = []
    if (cfg.out / "filter" / "kept.jsonl").is_file():
        exported.append(str(export_corpus(cfg)))
    card = model_card(cfg)
    if card:
        exported.append(str(card))
    return {"path": str(path), "bytes": len(page.encode()), "missing": missing, "exported": exported}


def summary_lines(summary: dict) -> list[str]:
    lines = [f"wrote {summary['path']} ({summary['bytes'] / 1024:.0f} KiB)"]
    for path in summary.get("exported", []):
        lines.append(f"exported {path}")
    if summary.get("missing"):
        lines.append("sections noted as missing: " + ", ".join(summary["missing"]))
    return lines
