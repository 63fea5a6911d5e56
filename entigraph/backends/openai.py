"""OpenAI-compatible backend: any server speaking ``POST {base_url}/chat/completions``
(vLLM's server, llama.cpp's, TGI, SGLang, a hosted API).

Requests run on a bounded thread pool (``backend.openai.concurrency``). Timeouts, connection
errors, 429 and 5xx answers and malformed bodies are retried with exponential backoff and jitter,
honouring ``Retry-After``; other 4xx answers (a bad request, a wrong key) fail at once. A request
that still fails comes back as ``finish_reason="error"`` with its reason: the run records it and
goes on. The API key is read from the environment variable named by
``backend.openai.api_key_env``, sent only in the Authorization header, and registered with
``entigraph.secrets``: error text is masked before it is cut (a cut would keep part of the key),
every log record is masked, and so is a completion that contains it, so no part of it reaches the
store or a log.

Several endpoints (``backend.openai.base_urls``): each request goes to the endpoint with the fewest
requests outstanding. An endpoint that refuses, drops, times out or answers 502/503/504 is taken
out for ``endpoint_backoff_s`` (doubling on each further failure, at most 60 s) and the request moves
at once to another endpoint (without spending a retry); once its time is up the endpoint gets
requests again, and one success puts it back for good. Every request still yields exactly one
Generation, in order, so the engine stores every passage once.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
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


ENDPOINT_MAX_DOWN_S = 60.0  # cap on how long a failing endpoint is left out


class _Retry(Exception):
    """A failure worth another try; `wait` is the server's Retry-After, if it sent one; `down`: the
    endpoint itself looks unwell (refused, dropped, timed out, 502/503/504)."""

    def __init__(self, reason: str, wait: float | None = None, down: bool = False) -> None:
        super().__init__(reason)
        self.wait, self.down = wait, down


class _Endpoint:
    """One server: its client, requests outstanding, and when it may be tried again after failing."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url, self.client = url, client
        self.outstanding = self.requests = self.ok = self.failures = self.fails_in_row = self.outages = 0
        self.down_until = 0.0

    def stats(self) -> dict[str, Any]:
        return {"url": self.url, "requests": self.requests, "ok": self.ok, "failures": self.failures,
                "outages": self.outages, "down": self.down_until > time.monotonic()}


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

    def __init__(self, base_url: str | list[str], model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 5, backoff_s: float = 1.0,
                 seed_jitter: int | None = None, endpoint_backoff_s: float = 2.0) -> None:
        if not model:
            raise ConfigError("backend.openai.model: name the model the server serves")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("backend.openai.base_urls: give at least one URL")
        self.model, self.max_retries, self.backoff_s = model, max_retries, backoff_s
        self.endpoint_backoff_s = endpoint_backoff_s
        register(api_key)
        self._secrets = (api_key,) if api_key else ()  # masked in completions too, before they are stored
        self._rng = random.Random(seed_jitter)
        self._lock = threading.Lock()
        self._turn = 0  # ties between equally loaded endpoints go round the list
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.endpoints = [_Endpoint(url, httpx.Client(
            base_url=url.rstrip("/") + "/", headers=headers, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )) for url in urls]
        self.client = self.endpoints[0].client
        self.pool = ThreadPoolExecutor(max_workers=concurrency * len(urls), thread_name_prefix="openai")

    @classmethod
    def from_config(cls, b: "BackendConfig", model: str) -> "OpenAIBackend":
        o = b.openai
        urls = list(getattr(o, "base_urls", None) or []) or o.base_url
        api_key = os.environ.get(o.api_key_env)
        if not api_key and o.api_key_env != "OPENAI_API_KEY":  # a variable named on purpose, and empty
            log.warning("backend.openai.api_key_env names %s, which is not set: requests go out without an API key",
                        o.api_key_env)
        return cls(urls, o.model or model, api_key=api_key, concurrency=o.concurrency,
                   timeout_s=o.timeout_s, max_retries=o.max_retries, backoff_s=o.backoff_s,
                   endpoint_backoff_s=getattr(o, "endpoint_backoff_s", 2.0))

    @property
    def detail(self) -> dict[str, Any] | None:
        """Per endpoint: requests sent, answered, failed, times taken out (several endpoints only)."""
        if len(self.endpoints) < 2:
            return None
        with self._lock:
            return {"endpoints": [e.stats() for e in self.endpoints]}

    def _acquire(self) -> _Endpoint:
        """The endpoint with the fewest outstanding requests among those not taken out; when all are
        out, the one that comes back first."""
        with self._lock:
            now = time.monotonic()
            n = len(self.endpoints)
            order = [self.endpoints[(self._turn + i) % n] for i in range(n)]
            self._turn = (self._turn + 1) % n
            up = [e for e in order if e.down_until <= now]
            ep = min(up, key=lambda e: e.outstanding) if up else min(order, key=lambda e: e.down_until)
            ep.outstanding += 1
            ep.requests += 1
            return ep

    def _release(self, ep: _Endpoint, ok: bool, down: bool = False) -> None:
        with self._lock:
            ep.outstanding -= 1
            if ok:
                ep.ok += 1
                ep.fails_in_row, ep.down_until = 0, 0.0
                return
            ep.failures += 1
            if down:
                ep.fails_in_row += 1
                if ep.down_until <= time.monotonic():
                    ep.outages += 1
                wait = min(self.endpoint_backoff_s * 2 ** (ep.fails_in_row - 1), ENDPOINT_MAX_DOWN_S)
                ep.down_until = time.monotonic() + wait
                if len(self.endpoints) > 1:
                    log.warning("endpoint %s taken out for %.1f s", ep.url, wait)

    def _others_up(self, ep: _Endpoint) -> bool:
        with self._lock:
            now = time.monotonic()
            return any(e is not ep and e.down_until <= now for e in self.endpoints)

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
        attempt, hops = 0, 0  # hops: moves to another endpoint after one failed, spending no retry
        while True:
            ep = self._acquire()
            try:
                gen = self._post(ep.client, payload)
            except _Retry as e:
                self._release(ep, ok=False, down=e.down)
                reason = mask(str(e))  # already masked where it was made; this guards any new reason
                if e.down and hops < len(self.endpoints) - 1 and self._others_up(ep):
                    hops += 1
                    log.warning("request failed on %s (%s); trying another endpoint", ep.url, reason)
                    continue
                if attempt == self.max_retries:
                    break
                wait = e.wait if e.wait is not None else self.backoff_s * 2 ** attempt * (0.5 + self._rng.random())
                log.warning("request failed (%s); retry %d/%d in %.2f s", reason, attempt + 1, self.max_retries, wait)
                time.sleep(min(wait, MAX_WAIT_S))
                attempt, hops = attempt + 1, 0
            except _Fatal as e:
                self._release(ep, ok=False)
                reason = mask(str(e))
                break
            else:
                self._release(ep, ok=True)
                gen.seconds = time.perf_counter() - start
                return gen
        return Generation("", 0, 0, "error", reason, time.perf_counter() - start)

    def _post(self, client: httpx.Client, payload: dict[str, Any]) -> Generation:
        try:
            r = client.post("chat/completions", json=payload)
        except httpx.TimeoutException:
            raise _Retry("timeout", down=True) from None
        except httpx.TransportError as e:  # refused, reset, closed mid-response
            raise _Retry(f"connection error: {type(e).__name__}: {mask(str(e))}", down=True) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retry(f"HTTP {r.status_code}: {_clip(r.text, 200)}", retry_after(r.headers.get("retry-after")),
                         down=r.status_code in (502, 503, 504))
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
        # a server that echoes the key (a prompt-injected document, a debugging proxy) must not get
        # it into passages.jsonl or the store: the completion is masked where it arrives
        return Generation(
            mask(text.strip(), self._secrets), int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or self.count_tokens(text)),
            "length" if choice.get("finish_reason") == "length" else "stop",
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for ep in self.endpoints:
            ep.client.close()


def _clip(text: str, limit: int) -> str:
    """Server text for an error message: masked first, then cut, so no part of a key survives."""
    return mask(text)[:limit]


class _Fatal(Exception):
    """A failure another try will not fix (400, 401, 404...)."""
