"""The train stage: continued pretraining of models.base on the kept synthetic corpus (and the
mixture the config names), resumable from its checkpoints. Writes under runs/<name>/train/."""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig

from .spec import StageSpec

STAGE = StageSpec(
    "train", "continue pretraining the base model (DeepSpeed)",
    sections=("train", "models.base"),
    outputs=("loss.png", "model/", "data/", "loss.json", "summary.json"),
    external_inputs=lambda cfg: list(cfg.train.replay.paths) + list(cfg.train.anneal_paths),
)


def run(cfg: RunConfig) -> dict:
    from ..training.deepspeed_env import launched
    from ..training.trainer import train

    if cfg.train.processes > 1 and not launched():
        from ..training.launch import launch

        return launch(cfg)
    return train(cfg)[1]


def summary_lines(summary: dict) -> list[str]:
    if not summary:
        return []
    src = ", ".join(f"{k} {v:,}" for k, v in summary["tokens_by_source"].items())
    val = f"{summary['val_loss']:.3f}" if summary.get("val_loss") is not None else "n/a"
    before = f" (before training {summary['val_loss_before']:.3f})" if summary.get("val_loss_before") else ""
    ds = Path(summary["deepspeed"]).stem if summary.get("deepspeed") else "off"
    tps = f"{summary['tokens_per_s']:.0f} tokens/s" if summary.get("tokens_per_s") else "no steps run"
    lines = [
        f"{summary['steps']} steps, blocks of {summary['block_size']}: {src} tokens",
        f"loss: train {summary['train_loss']:.3f}, validation {val}{before}" if summary.get("train_loss") is not None
        else f"validation loss {val}",
        f"{tps}, peak RSS {summary['peak_rss_mb'] / 1024:.1f} GiB, DeepSpeed {ds}, "
        f"bf16 {'on' if summary['bf16'] else 'off'}, {summary['threads']} thread(s)",
    ]
    if summary.get("resumed_from_step"):
        lines.append(f"resumed from the checkpoint at step {summary['resumed_from_step']}")
    lines.append(f"model: {summary['model']}")
    return lines
