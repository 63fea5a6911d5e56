"""The package as a user installs it: a wheel built from the checkout, installed into a fresh venv
outside the repository, runs the demo config to the train stage (on the tiny model).

The fresh venv gets the wheel only (`--no-deps`); its dependencies come from this checkout's venv
through a .pth line, so the test downloads nothing. A .pth *line* only appends a folder to sys.path
(the .pth files inside it are not run), so the checkout's editable install stays out: `entigraph`
must come from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(tmp: Path) -> tuple[Path, str]:
    """Build from a copy of what a source distribution holds, so the build's build/ and egg-info
    never land in the shared checkout."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "entigraph", src / "entigraph", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # else distutils warns
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, env=env, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    wheels = list((tmp / "dist").glob("entigraph-*.whl"))
    assert len(wheels) == 1, log[-3000:]
    return wheels[0], log


def _fresh_venv(tmp: Path) -> Path:
    root = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    py = root / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the checkout venv's packages (torch, transformers, ...) after the fresh venv's own
    Path(site, "zz_checkout_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


@pytest.mark.slow
def test_wheel_installs_outside_the_checkout_and_trains_the_demo(tmp_path, tiny_lm):
    wheel, log = _build_wheel(tmp_path)
    # setuptools' complaints ("Package would be ignored", deprecations) are all "warning" lines
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert not warnings, "\n".join(warnings[:20])

    root = _fresh_venv(tmp_path)
    py = root / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    work = tmp_path / "user"  # a user's folder: no checkout in sight
    work.mkdir()
    probe = subprocess.run([str(py), "-c", "import entigraph, sys; print(entigraph.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(probe).is_relative_to(root), probe  # the wheel's copy, not the checkout's editable one
    package = Path(probe).parent
    for shipped in ("data/deepspeed/zero2_bf16.json", "data/demo/demo.jsonl", "data/replay/general.txt",
                    "synthesis/templates/pair.txt"):
        assert (package / shipped).is_file(), shipped

    config = work / "demo.yaml"
    shutil.copy(REPO / "configs" / "demo.yaml", config)
    from entigraph.training.deepspeed_env import extensions_dir

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               # the DeepSpeed shm op this checkout's venv already built (the same torch headers)
               TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", str(extensions_dir(None))))
    sets = ["--set", f"models.base={tiny_lm}", "--set", "run_dir=runs",
            # the demo names its replay text by the checkout path; an install has it in the package
            "--set", f"train.replay.paths=[{package / 'data/replay/general.txt'}]",
            "--set", "train.block_size=64", "--set", "train.threads=1"]
    entigraph = str(root / "bin" / "entigraph")
    for stage in ("extract", "synthesize", "filter", "train"):
        out = subprocess.run([entigraph, stage, str(config), *sets], cwd=work, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"{stage}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    model = work / "runs" / "demo" / "train" / "model"
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors"))
