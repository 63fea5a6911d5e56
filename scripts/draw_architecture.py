"""Draw docs/img/architecture.png: the stages in order, the files they meet through, the building
blocks each stage uses, and the shared backend and config. Regenerate after moving modules:

    .venv/bin/python scripts/draw_architecture.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "architecture.png"

# the building blocks each stage uses (what its module imports, in words)
BLOCKS = {
    "extract": "corpus · ingest/\nentities/ (spaCy, LLM,\naliases) · graph",
    "synthesize": "synthesis/ sampler\nmodes · engine\nstore · facts/",
    "filter": "filters/ (gates with\nthresholds) · quality\n(data report)",
    "train": "training/ data\n(mixtures, replay)\ntrainer · deepspeed_env",
    "eval": "evaluation/ tasks\nscoring · stats\nretrieval/",
    "report": "evaluation/report\nexport (cards)\nreporting",
}


def stages() -> list[tuple[str, str, str, bool]]:
    """(stage, its main files, its building blocks, whether it can call the backend), from the
    stages' own declarations (entigraph/stages/*: STAGE)."""
    from entigraph.config import RunConfig
    from entigraph.stages import PIPELINE

    every = RunConfig()  # a config that turns on every use of the backend a stage can make
    every.entities.extractor, every.filter.judge.enabled, every.eval.answer_mode = "hybrid", True, "generate"
    files = {"report": "report.html\n(report/: its marker)"}
    return [(s.name, files.get(s.name) or "\n".join(s.outputs[:3]),
             BLOCKS.get(s.name, ""), s.uses_backend(every)) for s in PIPELINE]


STAGE_C, FILE_C, BLOCK_C, SHARED_C = "#2f6db5", "#eef3fb", "#f6f1e7", "#e9f5ec"


def box(ax, x, y, w, h, text, face, edge="#555", color="#111", size=8.5, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                                fc=face, ec=edge, lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, color=color,
            weight=weight, linespacing=1.25)


def arrow(ax, a, b, color="#555", style="-|>", ls="-"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=11, color=color, lw=1, ls=ls))


def main() -> None:
    fig, ax = plt.subplots(figsize=(13, 6.2))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    w, gap, x0 = 1.85, 0.28, 0.25
    box(ax, x0, 5.35, 6 * w + 5 * gap, 0.55,
        "config.py: every setting declared once · stages/: each stage declares itself · "
        "pipeline.py: fingerprints, stage cache, resume", SHARED_C, size=9)
    box(ax, x0, 0.15, 6 * w + 5 * gap, 0.5,
        "backend: section → backends/ (hf · vllm · vllm-server · openai), used by every stage that can call an LLM "
        "(dashed lines)", SHARED_C, size=9)
    for i, (name, files, blocks, uses_backend) in enumerate(stages()):
        x = x0 + i * (w + gap)
        box(ax, x, 4.35, w, 0.7, f"stages/\n{name}.py", STAGE_C, edge=STAGE_C, color="white", size=9.5,
            weight="bold")
        folder = "runs/<name>/" if name == "report" else f"runs/<name>/{name}/"
        box(ax, x, 3.05, w, 1.0, f"{folder}\n{files}", FILE_C, size=7.8)
        box(ax, x, 1.35, w, 1.35, blocks, BLOCK_C, size=8)
        arrow(ax, (x + w / 2, 4.35), (x + w / 2, 4.05))  # writes its folder
        arrow(ax, (x + w / 2, 2.7), (x + w / 2, 3.05), style="-")  # built from these blocks
        if uses_backend:
            arrow(ax, (x + w / 2, 0.65), (x + w / 2, 1.35), color="#3a8a4f", ls="--")
        if i:
            prev = x - gap
            arrow(ax, (prev + 0.02, 3.55), (x - 0.02, 3.55))  # each stage reads the files before it
    ax.text(x0, 6.05, "entigraph: stages meet only through files on disk; each runs, resumes and is "
            "tested alone", fontsize=11, weight="bold")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
