"""Where training runs: DeepSpeed config resolution, bf16 detection, and the one-process CPU setup.

Under the ``deepspeed`` launcher (or torchrun) the environment is the launcher's: nothing here
overrides it. Started as a plain process, DeepSpeed still needs a process group; on CPU that is
one gloo rank with the variables set here: without RANK, WORLD_SIZE and MASTER_ADDR/PORT it looks
for MPI and fails, and its default `ccl` backend is not installed on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from entigraph.devices import pick_device
from entigraph.errors import ConfigError
from entigraph.locks import say, wait_for_batons
from entigraph.models import cache_root

# The shipped DeepSpeed configs are package data, so a plain `pip install` can train.
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "deepspeed"
SINGLE_PROCESS_ENV = ("DS_ACCELERATOR", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True under the deepspeed launcher, torchrun or accelerate launch (they set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_cuda(device: str) -> bool:
    return pick_device(device) == "cuda"


def extensions_dir(cache_dir: str | None) -> Path:
    """Where the JIT-built DeepSpeed ops go (the shm comm op: ~45-110 s to build), with the model
    cache, one folder per Python environment: the build names the environment's include paths, so
    two checkouts' venvs sharing a folder rebuilt it at every switch, and each build held up every
    other run's training (4 min behind a low-priority study here)."""
    return cache_root(cache_dir) / "torch_extensions" / hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]


def cpu_has_bf16() -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX). Without them bf16 is emulated and slower than
    fp32: 2.4x slower for a 1024x576x1536 matmul on this AVX-512 machine without avx512_bf16."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(cuda: bool) -> bool:
    return torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16() and torch.backends.mkldnn.is_available()


def resolve_config(name: str | None) -> Path | None:
    """train.deepspeed: a JSON path, or a shipped config by its name (``zero2``) or by the path it has
    in a checkout's configs (``configs/deepspeed/zero2.json``, how run configs name it)."""
    if not name:
        return None
    path = Path(name)
    if path.is_file():
        return path.resolve()
    shipped = SHIPPED / f"{path.stem}.json"
    if path.parent.as_posix() in (".", "configs/deepspeed") and path.suffix in ("", ".json") and shipped.is_file():
        return shipped
    raise ConfigError(f"train.deepspeed: {name} not found (give a JSON path or one of "
                      f"{', '.join(p.stem for p in sorted(SHIPPED.glob('*.json')))})")


def read_deepspeed_config(path: Path, bf16: bool) -> dict:
    """The DeepSpeed config with bf16 set to what this hardware does: a config asking for bf16
    trains in fp32 where bf16 is unsupported or slower (the HF integration rejects a mismatch
    between the JSON and TrainingArguments, so it is settled here)."""
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if "bf16" in config:
        config["bf16"]["enabled"] = bf16
    if "optimizer" in config and not config.get("zero_optimization", {}).get("offload_optimizer"):
        # A named optimizer makes DeepSpeed JIT-compile its own Adam (~70 s on CPU); the Trainer's
        # torch AdamW is as fast here. Offload configs keep theirs (DeepSpeedCPUAdam is the point).
        del config["optimizer"]
    return config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def single_process(cache_dir: str | None, cuda: bool) -> Iterator[None]:
    """A one-rank process group for DeepSpeed outside a launcher. The variables are restored
    afterwards so later stages in this process do not think they are distributed; the group itself
    lives as long as the process (DeepSpeed caches its sub-groups, so a second one would break)."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir(cache_dir)))
    # A build killed midway leaves its lock, and torch would wait on it forever without a word.
    wait_for_batons(Path(os.environ["TORCH_EXTENSIONS_DIR"]), echo=lambda line: say(f"[train] {line}"))
    if launched():  # the launcher set ranks and ports; DeepSpeed on CPU still needs gloo named
        if not cuda:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
            if not torch.distributed.is_initialized():
                import deepspeed

                deepspeed.init_distributed(dist_backend="gloo", verbose=False)
        yield
        return
    saved = dict(os.environ)  # the HF integration adds ACCELERATE_USE_DEEPSPEED and others too
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
    if not cuda:
        os.environ["DS_ACCELERATOR"] = "cpu"
    if not torch.distributed.is_initialized():
        os.environ["MASTER_PORT"] = str(_free_port())
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _reset_accelerate()


def _reset_accelerate() -> None:
    """accelerate keeps its distributed state in process-wide singletons; forget it."""
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
