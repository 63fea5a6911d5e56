"""Child processes that stop cleanly with their parent: the study's workers, torchrun's ranks."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings


def quiet_libraries() -> None:
    """Library chatter off for a command's own output (the CLI, a study's worker)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def run_to_end(cmd: list[str], env: dict[str, str], grace_s: float = 5.0, term_s: float = 60.0,
               capture_stderr: bool = False) -> tuple[int, str]:
    """Run `cmd` to its end; returns (exit code, its stderr when captured, else "").

    When this process is stopped (Ctrl-C, or `kill`, which errors.run_reporting_errors turns into
    KeyboardInterrupt), the child gets `grace_s` to stop by itself (a Ctrl-C from the terminal
    reached it too), then SIGTERM and `term_s` to record its state (torchrun forwards the SIGTERM to
    its ranks), then SIGKILL. subprocess.run would SIGKILL it at once, which orphans torchrun's ranks."""
    with subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE if capture_stderr else None, text=True) as proc:
        try:
            _, err = proc.communicate()
            return proc.returncode, err or ""
        except BaseException:
            for stop, wait_s in ((None, grace_s), (proc.terminate, term_s), (proc.kill, None)):
                if stop is not None:
                    stop()
                try:
                    proc.communicate(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            raise
