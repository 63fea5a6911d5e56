from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from entigraph.errors import ConfigError
from entigraph.io import read_json, write_json
from entigraph.training import deepspeed_env
from entigraph.stages.train import summary_lines
from entigraph.training.trainer import last_checkpoint, prepare_checkpoints, train


def _weights(run_out: Path) -> dict[str, torch.Tensor]:
    return load_file(run_out / "train" / "model" / "model.safetensors")


def test_train_writes_a_plain_hf_model_that_reloads_with_the_same_logits(run_cfg):
    from transformers import AutoModelForCausalLM

    run_cfg.train.deepspeed = None
    run_cfg.train.anneal_fraction = 0.1
    trainer, summary = train(run_cfg)
    out = run_cfg.out / "train"
    files = {p.name for p in (out / "model").iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= files
    assert not files & {"optimizer.pt", "training_args.bin", "scheduler.pt"}
    assert not (out / "checkpoints").exists()  # removed after success
    assert read_json(out / "model" / "config.json")["use_cache"] is True

    reloaded = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    trained = trainer.model.state_dict()
    for name, weight in reloaded.state_dict().items():  # the saved weights are the trained ones, exactly
        torch.testing.assert_close(weight, trained[name], rtol=0, atol=0)
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])
    with torch.no_grad():
        # under bf16 the Trainer's model still runs its forward in bf16 autocast (CPUs with AMX)
        expected = trainer.model.eval()(ids).logits
        tol = {"rtol": 0.05, "atol": 0.02} if summary["bf16"] else {}
        torch.testing.assert_close(reloaded(ids).logits, expected, **tol)

    assert summary == read_json(out / "summary.json")
    assert set(summary["tokens_by_source"]) == {"synthetic", "replay", "anneal"}
    assert summary["val_loss"] < summary["val_loss_before"]  # it learned something
    assert summary["bf16"] is False or deepspeed_env.cpu_has_bf16()
    curves = read_json(out / "loss.json")
    assert len(curves["steps"]) == len(curves["train_loss"]) == len(curves["lr"]) == len(curves["tokens"])
    assert curves["eval_steps"][0] == 0 and curves["anneal_start_step"] is not None
    assert (out / "loss.png").stat().st_size > 0
    assert any("steps" in line for line in summary_lines(summary))


@pytest.mark.parametrize("deepspeed,lora", [(None, False), ("zero2", False), (None, True)],
                         ids=["plain", "deepspeed-zero2", "lora"])
def test_sigkill_between_checkpoints_resumes_to_the_same_result(tmp_path, make_run, deepspeed, lora,
                                                               train_until_killed):
    """DeepSpeed costs ~20 s more per run (its import and engine set-up; plus a one-off ~45-110 s
    JIT build of its shm comm op, cached under the project cache's torch_extensions)."""
    ref = make_run(tmp_path / "ref")
    ref.train.deepspeed, ref.train.lora.enabled = deepspeed, lora
    _, ref_summary = train(ref)

    cfg = make_run(tmp_path / "killed")
    cfg.train.deepspeed, cfg.train.lora.enabled = deepspeed, lora
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    proc = train_until_killed(config, 10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert last_checkpoint(cfg.out / "train" / "checkpoints").name == "checkpoint-8"
    assert not (cfg.out / "train" / "model").exists()

    _, summary = train(cfg)  # the rerun picks up at step 8
    assert summary["resumed_from_step"] == 8
    assert summary["data_hash"] == ref_summary["data_hash"]
    assert summary["steps"] == ref_summary["steps"]
    assert summary["val_loss"] == pytest.approx(ref_summary["val_loss"], rel=1e-5)
    assert summary["train_loss"] == pytest.approx(ref_summary["train_loss"], rel=1e-5)
    assert read_json(cfg.out / "train" / "loss.json")["train_loss"] == pytest.approx(
        read_json(ref.out / "train" / "loss.json")["train_loss"], rel=1e-5)
    got, want = _weights(cfg.out), _weights(ref.out)
    assert got.keys() == want.keys() and "lm_head.weight" not in got  # tied embeddings stay tied
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_lora_trains_adapters_only_and_saves_a_plain_merged_model(run_cfg):
    from transformers import AutoModelForCausalLM

    run_cfg.train.deepspeed = None
    run_cfg.train.lora.enabled, run_cfg.train.lora.rank = True, 4
    run_cfg.train.lr = 1e-2
    trainer, summary = train(run_cfg)
    total = sum(p.numel() for p in trainer.model.parameters())
    assert 0 < summary["trainable_params"] < total / 5 and summary["lora"]["rank"] == 4
    folder = run_cfg.out / "train" / "model"
    assert not (folder / "adapter_config.json").exists()  # merged: a plain model, no adapter files
    reloaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    base = AutoModelForCausalLM.from_pretrained(run_cfg.models.base).eval()
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])
    with torch.no_grad():
        expected = trainer.model.eval()(ids).logits  # the adapters, unmerged
        tol = {"rtol": 0.05, "atol": 0.02} if summary["bf16"] else {"rtol": 1e-4, "atol": 1e-4}
        torch.testing.assert_close(reloaded(ids).logits, expected, **tol)
        assert not torch.allclose(reloaded(ids).logits, base(ids).logits)  # it did learn


def test_partial_and_stale_checkpoints_are_not_resumed(tmp_path):
    ckpts = tmp_path / "checkpoints"
    for step, complete in ((4, True), (8, True), (12, False)):  # 12: killed while saving
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            write_json(ckpts / f"checkpoint-{step}" / "trainer_state.json", {"global_step": step})
    (ckpts / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # torn write
    write_json(ckpts / "run_key.json", {"key": "a"})
    assert prepare_checkpoints(ckpts, "a").name == "checkpoint-4"
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-4"]
    assert prepare_checkpoints(ckpts, "b") is None  # other data or settings: start afresh
    assert not any(ckpts.glob("checkpoint-*"))


def test_deepspeed_config_follows_the_hardware(monkeypatch):
    path = deepspeed_env.resolve_config("zero2_bf16")
    assert path == deepspeed_env.resolve_config("configs/deepspeed/zero2_bf16.json")
    assert deepspeed_env.read_deepspeed_config(path, bf16=False)["bf16"]["enabled"] is False
    assert deepspeed_env.read_deepspeed_config(path, bf16=True)["bf16"]["enabled"] is True
    offload = deepspeed_env.read_deepspeed_config(deepspeed_env.resolve_config("zero3_offload"), bf16=True)
    assert "optimizer" in offload  # DeepSpeedCPUAdam is the point of offloading
    with pytest.raises(ConfigError, match="zero0"):
        deepspeed_env.resolve_config("zero9")
    for name in ("zero0", "zero2", "zero3", "zero3_offload"):
        json.loads(deepspeed_env.resolve_config(name).read_text())


def test_single_process_env_is_restored(monkeypatch, tmp_path):
    for k in deepspeed_env.SINGLE_PROCESS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr("deepspeed.init_distributed", lambda **kw: None)
    with deepspeed_env.single_process(None, cuda=False):
        assert os.environ["WORLD_SIZE"] == "1" and os.environ["DS_ACCELERATOR"] == "cpu"
    assert not any(k in os.environ for k in deepspeed_env.SINGLE_PROCESS_ENV)
    monkeypatch.setenv("LOCAL_RANK", "3")  # under a launcher nothing is overridden
    with deepspeed_env.single_process(None, cuda=False):
        assert "WORLD_SIZE" not in os.environ
