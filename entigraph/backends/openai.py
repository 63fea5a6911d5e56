"""OpenAI-compatible backend: any server speaking ``POST {base_url}/chat/completions``
(vLLM's server, llama.cpp's, TGI, SGLang, a hosted API).

Requests run on a bounded thread pool (``backend.openai.concurrency``). Timeouts, connection
errors, 429 and 5xx answers and malformed bodies are retried with exponential backoff and jitter,
honouring ``Retry-After``; other 4xx answers (a bad request, a wrong key) fail at once. A request
that still fails comes back as ``finish_reason="error"`` with its reason: the run records it and
goes on. The API key is read from the environment variable named by
``backend.openai.api_key_env``, sent only in the Authorization header, and registered with
``entigraph.secrets``: error text is masked before it is cut (a cut would keep part of the key),
and every log record is masked, so no part of it reaches the store or a log.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import ConfigError
from ..secrets import mask, register
from .base import Generation, Request

if TYPE_CHECKING:
    from ..config import BackendConfig

log = logging.getLogger(__name__)
MAX_WAIT_S = 120.0  # cap on one backoff or Retry-After wait


class _Retry(Exception):
    """A failure worth another try; `wait` is the server's Retry-After, if it sent one."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 5, backoff_s: float = 1.0,
                 seed_jitter: int | None = None) -> None:
        if not model:
            raise ConfigError("backend.openai.model: name the model the server serves")
        self.model, self.max_retries, self.backoff_s = model, max_retries, backoff_s
        register(api_key)
        self._rng = random.Random(seed_jitter)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")

    @classmethod
    def from_config(cls, b: "BackendConfig", model: str) -> "OpenAIBackend":
        o = b.openai
        return cls(o.base_url, o.model or model, api_key=os.environ.get(o.api_key_env), concurrency=o.concurrency,
                   timeout_s=o.timeout_s, max_retries=o.max_retries, backoff_s=o.backoff_s)

    def count_tokens(self, text: str) -> int:
        # No tokenizer on the client side: ~4 characters a token for English. Only the local-context
        # cap uses this; reported token counts come from the server's `usage`.
        return len(text) // 4 + 1

    def generate(self, requests: list[Request]) -> list[Generation]:
        return list(self.pool.map(self._one, requests))

    def _one(self, req: Request) -> Generation:
        s = req.sampling
        payload: dict[str, Any] = {
            "model": self.model, "messages": req.messages, "temperature": s.temperature, "top_p": s.top_p,
            "max_tokens": s.max_new_tokens,
            # not part of OpenAI's API, but vLLM, llama.cpp and TGI servers accept it
            "repetition_penalty": s.repetition_penalty,
        }
        if req.seed is not None:
            payload["seed"] = req.seed
        start = time.perf_counter()
        reason = ""
        for attempt in range(self.max_retries + 1):
            try:
                gen = self._post(payload)
                gen.seconds = time.perf_counter() - start
                return gen
            except _Retry as e:
                reason = mask(str(e))  # already masked where it was made; this guards any new reason
                if attempt == self.max_retries:
                    break
                wait = e.wait if e.wait is not None else self.backoff_s * 2 ** attempt * (0.5 + self._rng.random())
                log.warning("request failed (%s); retry %d/%d in %.2f s", reason, attempt + 1, self.max_retries, wait)
                time.sleep(min(wait, MAX_WAIT_S))
            except _Fatal as e:
                reason = mask(str(e))
                break
        return Generation("", 0, 0, "error", reason, time.perf_counter() - start)

    def _post(self, payload: dict[str, Any]) -> Generation:
        try:
            r = self.client.post("chat/completions", json=payload)
        except httpx.TimeoutException:
            raise _Retry("timeout") from None
        except httpx.TransportError as e:  # refused, reset, closed mid-response
            raise _Retry(f"connection error: {type(e).__name__}: {mask(str(e))}") from None
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retry(f"HTTP {r.status_code}: {_clip(r.text, 200)}", retry_after(r.headers.get("retry-after")))
        if r.status_code != 200:
            raise _Fatal(f"HTTP {r.status_code}: {_clip(r.text, 200)}")
        try:
            body = r.json()
            choice = body["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retry(f"malformed response: {type(e).__name__}: {_clip(str(e), 100)}") from None
        usage = body.get("usage") or {}
        return Generation(
            text.strip(), int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or self.count_tokens(text)),
            "length" if choice.get("finish_reason") == "length" else "stop",
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


def _clip(text: str, limit: int) -> str:
    """Server text for an error message: masked first, then cut, so no part of a key survives."""
    return mask(text)[:limit]


class _Fatal(Exception):
    """A failure another try will not fix (400, 401, 404...)."""
