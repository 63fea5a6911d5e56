"""Fixtures shared by the pipeline tests of this folder."""

import pytest

from entigraph import pipeline


@pytest.fixture
def calls(monkeypatch):
    """Stand-in stages: each records its name; extract writes an output as the real one does (so
    its content reaches the later stages' fingerprints). Returns the list of stages run."""
    ran = []

    def fake(stage):
        def run(cfg):
            ran.append(stage)
            if stage == "extract":
                (cfg.out / "extract" / "documents.jsonl").write_text(f"{len(ran)}\n")
            return {"stage": stage}
        return run, lambda summary: [f"summary of {summary['stage']}"]

    monkeypatch.setattr(pipeline, "stage_function", fake)
    return ran
