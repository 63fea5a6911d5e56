"""Stage bookkeeping: completion markers, fingerprints, invalidation. Stages are stand-ins here;
tests/test_end_to_end.py runs the real ones."""

import pytest

from entigraph import fingerprints, pipeline
from entigraph.stages import BY_NAME
from entigraph.stages import STAGES
from entigraph.config import load_config


def cfg_for(tmp_path, *overrides):
    return load_config(None, [f"run_dir={tmp_path}", "name=t", *overrides])


def test_rerun_skips_complete_stages(tmp_path, calls):
    lines = []
    pipeline.run_all(cfg_for(tmp_path), echo=lines.append)
    assert calls == list(STAGES)
    assert "[extract] summary of extract" in lines
    pipeline.run_all(cfg_for(tmp_path), echo=lines.append)
    assert calls == list(STAGES)  # nothing ran twice
    assert (tmp_path / "t" / "config.yaml").is_file()
    assert set((tmp_path / "t" / "timings.json").read_text().split('"')) >= set(STAGES)


def test_changed_setting_reruns_that_stage_and_later_ones(tmp_path, calls):
    pipeline.run_all(cfg_for(tmp_path))
    calls.clear()
    pipeline.run_all(cfg_for(tmp_path, "filter.min_words=5"))
    assert calls == ["filter", "train", "eval", "report"]


def test_forced_stage_invalidates_later_stages(tmp_path, calls):
    cfg = cfg_for(tmp_path)
    pipeline.run_all(cfg)
    calls.clear()
    pipeline.run_stage(cfg, "synthesize", force=True)
    pipeline.run_all(cfg)
    assert calls == ["synthesize", "filter", "train", "eval", "report"]


def test_failed_stage_is_not_marked_complete(tmp_path, monkeypatch):
    def boom(stage):
        def run(cfg):
            raise RuntimeError("killed")
        return run, None

    monkeypatch.setattr(pipeline, "stage_function", boom)
    cfg = cfg_for(tmp_path)
    with pytest.raises(RuntimeError):
        pipeline.run_stage(cfg, "extract")
    assert not fingerprints.is_complete(cfg, "extract")


@pytest.mark.parametrize("extractor,reruns", [("llm", True), ("hybrid", True), ("spacy", False)])
def test_backend_settings_rerun_extract_only_when_it_calls_the_model(tmp_path, calls, extractor, reruns):
    pipeline.run_all(cfg_for(tmp_path, f"entities.extractor={extractor}"))
    calls.clear()
    pipeline.run_all(cfg_for(tmp_path, f"entities.extractor={extractor}", "backend.sampling.temperature=0.3"))
    # synthesis always calls the model, so it and everything after it rerun either way
    assert calls == (["extract"] if reruns else []) + ["synthesize", "filter", "train", "eval", "report"]


def test_backend_settings_reach_filter_and_eval_only_when_they_call_the_model(tmp_path, calls):
    base = ("filter.judge.enabled=true", "eval.answer_mode=generate")
    cfg = cfg_for(tmp_path, *base)
    assert BY_NAME["filter"].inputs(cfg)[-1] == "backend"
    assert BY_NAME["eval"].inputs(cfg)[-1] == "backend"
    assert "backend" not in BY_NAME["filter"].inputs(cfg_for(tmp_path))
    assert "backend" not in BY_NAME["eval"].inputs(cfg_for(tmp_path))
    assert "backend" not in BY_NAME["train"].inputs(cfg)


def test_model_stages_leave_out_generator_free_synthesis(tmp_path):
    assert pipeline.model_stages(cfg_for(tmp_path)) == ["synthesize"]
    free = cfg_for(tmp_path, "synthesis.modes=[permute,profile,qa]")
    assert pipeline.model_stages(free) == []  # make demo then builds no vLLM environment
    assert pipeline.model_stages(cfg_for(tmp_path, "synthesis.modes=[permute,pair]")) == ["synthesize"]
    assert pipeline.model_stages(cfg_for(tmp_path, "synthesis.modes=[permute]", "eval.answer_mode=generate")) == ["eval"]


def test_stage_cache_runs_a_shared_stage_once(tmp_path, calls):
    a = cfg_for(tmp_path, "stage_cache=true")
    b = load_config(None, [f"run_dir={tmp_path}", "name=u", "stage_cache=true", "filter.min_words=3"])
    pipeline.run_all(a)
    calls.clear()
    lines = []
    pipeline.run_all(b, echo=lines.append)
    assert calls == ["filter", "train", "eval", "report"]  # extract and synthesize came from the cache
    assert any(line.startswith("[synthesize] reused from the stage cache") for line in lines)
    assert (tmp_path / "u" / "extract" / ".done.json").is_file()
    calls.clear()
    pipeline.run_all(b)
    assert calls == []  # the reused stages are complete in their new folder


def test_resumed_stage_time_counts_every_attempt(tmp_path, monkeypatch):
    import json

    attempts = []

    def flaky(stage):
        def run(cfg):
            attempts.append(stage)
            if stage == "synthesize" and attempts.count("synthesize") == 1:
                raise KeyboardInterrupt  # interrupted once, then resumed
            return {}
        return run, None

    monkeypatch.setattr(pipeline, "stage_function", flaky)
    cfg = cfg_for(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(cfg)
    pipeline.run_all(cfg)
    rows = [json.loads(line) for line in (tmp_path / "t" / "history.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["outcome"]) for r in rows if r["stage"] == "synthesize"] == [
        ("synthesize", "KeyboardInterrupt"), ("synthesize", "done")]
    timings = json.loads((tmp_path / "t" / "timings.json").read_text())
    assert set(timings["total"]) == set(STAGES)


def test_stage_cache_a_stage_another_process_is_computing_is_waited_for_and_reused(tmp_path, monkeypatch):
    """Two runs side by side (a study's two invocations) that need the same stage output: the second
    waits for the first and reuses its folder instead of computing it again."""
    import threading

    ran, started, waiting = [], threading.Event(), threading.Event()

    def slow(stage):
        def run(cfg):
            ran.append((cfg.name, stage))
            started.set()
            assert waiting.wait(30), "the second run never waited"  # held until the other run is waiting
            return {}
        return run, None

    a = cfg_for(tmp_path, "stage_cache=true")
    b = load_config(None, [f"run_dir={tmp_path}", "name=u", "stage_cache=true"])
    monkeypatch.setattr(pipeline, "stage_function", slow)
    waiting.set()
    pipeline.run_stage(a, "extract")
    pipeline.run_stage(b, "extract")  # reused: the same documents reach both runs' fingerprints
    waiting.clear()
    started.clear()  # set by the extracts: the next set must be the first run's synthesis
    assert fingerprints.fingerprint(a, "synthesize") == fingerprints.fingerprint(b, "synthesize")
    first = threading.Thread(target=pipeline.run_stage, args=(a, "synthesize"))
    first.start()
    assert started.wait(30)
    lines = []

    def echo(line):
        lines.append(line)
        if "another run is computing this stage" in line:
            waiting.set()

    pipeline.run_stage(b, "synthesize", echo=echo)
    first.join(30)
    assert ran == [("t", "extract"), ("t", "synthesize")]  # computed once
    assert any(line.startswith("[synthesize] reused from the stage cache") for line in lines)
    assert fingerprints.is_complete(b, "synthesize")
