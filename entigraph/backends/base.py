"""The backend interface: chat requests in, generations with token counts out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..config import DecodingConfig, SamplingConfig


@dataclass
class Request:
    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": ...}]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int | None = None  # per-request seed where the backend supports it
    context: str = ""  # the source text the messages quote (faithful decoding contrasts and copies it)
    decoding: DecodingConfig | None = None  # faithful decoding (hf backend); None = plain sampling


@dataclass
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | error
    error: str = ""  # set when finish_reason == "error": the request failed for good
    seconds: float = 0.0


class Backend(Protocol):
    name: str  # hf | vllm | openai
    model: str  # what was loaded (path or served model name)

    def generate(self, requests: list[Request]) -> list[Generation]:
        """One Generation per request, in order. A failed request yields finish_reason="error"
        with the reason in `error`; the call itself raises only for misconfiguration."""
        ...

    def count_tokens(self, text: str) -> int:
        ...

    def close(self) -> None:
        ...


def render_chat(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt text a local model sees: its chat template, or plain turns for base models."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
