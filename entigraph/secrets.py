"""Masking secrets (API keys) out of text before it is cut, logged or stored.

A backend that holds a secret registers it once (`register`); from then on `mask(text)` hides it in
any text, and every log record created in the process is masked too (a record factory, installed on
the first registration), so code that never sees the key still cannot write it out.

Not only the whole secret is hidden, but any run of `FRAGMENT` or more of its characters: text is
cut in many places (an error body to 200 characters, a summary line to 200 more) and servers echo
keys partly ("sk-abc...wxyz"), so a prefix, suffix or middle of a key reaches text as often as the
whole key does, and 8 characters of a random key are already far more than a guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

FRAGMENT = 8  # shortest run of a secret's characters that is masked on its own
MASK = "***"

_registered: frozenset[str] = frozenset()
_lock = threading.Lock()
_base_factory = None  # the log record factory ours wraps, once installed


def register(secret: str | None) -> None:
    """Mask `secret` from now on in `mask()` without arguments and in every log record."""
    global _registered
    if not secret:
        return
    with _lock:
        _registered = _registered | {secret}
        _install_record_factory()


def registered() -> frozenset[str]:
    return _registered


def mask(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret, and every run of >= FRAGMENT characters of one, replaced by ***.
    `secrets` defaults to the registered ones."""
    secrets = [s for s in (_registered if secrets is None else secrets) if s]
    if not text or not secrets:
        return text
    hidden = [False] * len(text)
    for secret in secrets:
        _mark(text, secret, hidden)
    return _replace(text, hidden)


def _mark(text: str, secret: str, hidden: list[bool]) -> None:
    """Flag the characters of `text` inside an occurrence of `secret` (short secrets) or of any
    FRAGMENT-long window of it: a fragment of >= FRAGMENT characters is covered by its windows."""
    n = min(len(secret), FRAGMENT)
    windows = {secret[i:i + n] for i in range(len(secret) - n + 1)}
    for i in range(len(text) - n + 1):
        if text[i:i + n] in windows:
            hidden[i:i + n] = [True] * n


def _replace(text: str, hidden: list[bool]) -> str:
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _install_record_factory() -> None:
    """Mask every log record when it is created. A logging.Filter would not do: a filter on the
    `entigraph` logger skips records of its children (entigraph.backends.openai), and one on
    handlers misses handlers added later (pytest's caplog, a user's own)."""
    global _base_factory
    if _base_factory is not None:
        return
    _base_factory = logging.getLogRecordFactory()
    base = _base_factory

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if _registered:
            mask_record(record)
        return record

    logging.setLogRecordFactory(factory)


def mask_record(record: logging.LogRecord) -> None:
    """Mask a record's message, traceback and stack in place (left as is when nothing changes, so
    handlers that read `args` still get them)."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string or str(arg): logging reports it when the record is handled
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        trace = logging.Formatter().formatException(record.exc_info)
        if mask(trace) != trace:
            record.exc_text = mask(trace)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
