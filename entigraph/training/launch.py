"""Several training processes on one machine: the train stage launches them with torchrun.

`train.processes: N` runs N ranks of the same trainer (gloo on CPU, one GPU each with CUDA), the
code path of a multi-node DeepSpeed run on one machine. The stage process only waits: each rank
reads the run's config, rank 0 writes the model and the summary, a rerun resumes from the last
checkpoint after any rank was killed (torchrun then stops the others).

    python -m entigraph.training.launch CONFIG.yaml     # one rank (torchrun starts N of these)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

from entigraph import artifacts
from entigraph.config import RunConfig, load_config
from entigraph.errors import EntigraphError
from entigraph.io import atomic_path, read_json
from entigraph.processes import run_to_end


def launch(cfg: RunConfig) -> dict:
    """Run the train stage as `cfg.train.processes` local ranks; returns rank 0's summary."""
    out = artifacts.stage_dir(cfg.out, "train")
    config = out / "launch.yaml"
    with atomic_path(config) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // cfg.train.processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.train.processes}",
           "-m", "entigraph.training.launch", str(config)]
    code, stderr = run_to_end(cmd, env, capture_stderr=True)  # stopping the stage stops the ranks, no orphans
    if code != 0:
        sys.stderr.write(stderr[-20000:])  # the ranks' own tracebacks, for the record
        raise EntigraphError(f"train: a training process failed (exit {code}): {_failure(stderr)}")
    return read_json(out / "summary.json")


def _failure(stderr: str) -> str:
    """The ranks' last exception ("[rank0]: ValueError: ..."), not torchrun's ChildFailedError about it."""
    lines = [re.sub(r"^\[rank\d+\]:\s*", "", line).strip() for line in stderr.splitlines()]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line) and "ChildFailedError" not in line]
    return (errors or [line for line in lines if line] or [""])[-1][:400]


def main(argv: list[str]) -> int:
    from entigraph.training.trainer import train

    train(load_config(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
