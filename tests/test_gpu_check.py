"""scripts/gpu_check.py, the GPU run prepared for a lent device, runs here end to end on the CPU
(--cpu-dry-run): every check's code path is exercised, so the run on a GPU fails only for GPU reasons."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_check_on_the_cpu(tmp_path):
    out = tmp_path / "gpu-check.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--cpu-dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = {c["check"]: c for c in json.loads(out.read_text())["checks"]}
    assert list(checks) == ["cuda", "devices", "generate", "scoring", "train", "vllm", "ray"]
    assert checks["cuda"]["status"] == "SKIP"
    for name in ("devices", "generate", "scoring", "train"):
        assert checks[name]["status"] == "PASS", checks[name]
    assert checks["generate"]["tokens_per_s"] > 0 and "DeepSpeed zero2_bf16 on cpu" in checks["train"]["detail"]
    lines = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in ("PASS", "SKIP", "FAIL")]
    assert len(lines) == 7  # one line per check
