"""The train stage module: one process trains in place, several are launched; its summary reads
back (the trainer itself: tests/entigraph/training/)."""

from entigraph.config import RunConfig
from entigraph.stages import train


def test_several_processes_are_launched_and_one_trains_in_place(monkeypatch):
    import entigraph.training.deepspeed_env as env
    import entigraph.training.launch as launch
    import entigraph.training.trainer as trainer

    seen = []
    monkeypatch.setattr(env, "launched", lambda: False)
    monkeypatch.setattr(launch, "launch", lambda cfg: seen.append("launch") or {"how": "launch"})
    monkeypatch.setattr(trainer, "train", lambda cfg: seen.append("train") or (None, {"how": "train"}))
    cfg = RunConfig()
    assert train.run(cfg) == {"how": "train"}
    cfg.train.processes = 2
    assert train.run(cfg) == {"how": "launch"} and seen == ["train", "launch"]
    monkeypatch.setattr(env, "launched", lambda: True)  # a rank under the launcher trains itself
    assert train.run(cfg) == {"how": "train"}


def test_summary_lines_name_steps_losses_speed_and_resume():
    summary = {"tokens_by_source": {"raw": 1200, "replay": 130}, "val_loss": 2.5, "val_loss_before": 3.1,
               "deepspeed": "/x/zero2_bf16.json", "tokens_per_s": 98.4, "steps": 12,
               "block_size": 512, "train_loss": 2.75, "peak_rss_mb": 4096, "bf16": False, "threads": 1,
               "resumed_from_step": 8, "model": "runs/t/train/model"}
    text = "\n".join(train.summary_lines(summary))
    assert "12 steps, blocks of 512: raw 1,200, replay 130 tokens" in text
    assert "validation 2.500 (before training 3.100)" in text and "98 tokens/s" in text
    assert "DeepSpeed zero2_bf16" in text and "resumed from the checkpoint at step 8" in text
    assert train.summary_lines({}) == []
