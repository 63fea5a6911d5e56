"""Answer questions with a causal LM: option log-likelihoods (the default), or generation through a
backend with answer parsing (for instruction-tuned or larger models).

Log-likelihood scoring. The prompt is plain text for base LMs:

    {context}\\n\\nQuestion: {question}\\nAnswer:      (+ " {option}" as the continuation)
    {context}\\n\\n{probe prefix}                      (cloze probes, + " {target}")

The prefix (context + question) is encoded ONCE and its KV cache is reused for every option; the
options of a question run as one batch over the cache expanded to the number of options. Context
and continuation are tokenised separately and concatenated (as lm-evaluation-harness does), so the
cached and the full-sequence computations see the same token ids. A context too long for
`max_context_tokens` is cut from the left; the question is always kept whole.

Scoring modes, all recorded for every question (eval.scoring picks the headline one):
- raw:         sum of the option's token log-probabilities (favours short options)
- length_norm: raw / number of option tokens (per token)
- char_norm:   raw / number of option characters (per character; lm-eval's acc_norm)
- calibrated:  raw - log P(option | "Answer:") (PMI: removes the option's prior likelihood)
"""

from __future__ import annotations

import re
import time
from typing import Sequence

import numpy as np
import torch

from entigraph.devices import pick_device, pick_dtype
from entigraph.records import Question

from .answers import exact_match, normalize_answer

MODES = ("raw", "length_norm", "char_norm", "calibrated")
UNCONDITIONAL_PREFIX = "Answer:"


def cache_argument(model) -> str:
    """The forward() keyword for a KV cache: `cache` from transformers 5.2x (`past_key_values` is
    deprecated there and goes in 5.40), `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(out):
    """The KV cache of a forward pass's output, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _crop_to(cache, length: int) -> None:
    """Drop cached positions beyond `length` (a negative count works across transformers versions)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class LMScorer:
    def __init__(self, model_path: str, device: str = "auto", dtype: str = "auto",
                 max_context_tokens: int = 1536, batch_options: bool = True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=self.dtype).to(self.device).eval()
        self.max_context_tokens = max_context_tokens
        self.batch_options = batch_options
        # whatever the tokenizer puts in front of a text on its own (a BOS token, or nothing)
        self.specials = self.tokenizer("", add_special_tokens=True)["input_ids"]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.cache_arg = cache_argument(self.model)
        self._uncond: dict[tuple, np.ndarray] = {}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # --- prompts -----------------------------------------------------------------------------
    def prompt_ids(self, q: Question, context: str | None = None) -> tuple[list[int], bool]:
        """Token ids of the prefix, and whether the context had to be cut (from the left)."""
        tail = q.question if q.kind == "cloze" else f"Question: {q.question}\nAnswer:"
        tail_ids = self.encode(tail)
        ctx_ids = self.encode(context.strip() + "\n\n") if context else []
        budget = max(0, self.max_context_tokens - len(self.specials) - len(tail_ids))
        truncated = len(ctx_ids) > budget
        if truncated:
            ctx_ids = ctx_ids[len(ctx_ids) - budget:] if budget else []
        return self.specials + ctx_ids + tail_ids, truncated

    def continuation_ids(self, text: str) -> list[int]:
        ids = self.encode(" " + text.strip())
        return ids or [self.pad_id]

    # --- the model ---------------------------------------------------------------------------
    @torch.inference_mode()
    def continuation_logprobs(self, prefix: list[int], conts: Sequence[list[int]], greedy_tokens: int = 0
                              ) -> tuple[list[np.ndarray], list[int]]:
        """Per-token log-probabilities of each continuation after `prefix`, from one pass over the
        prefix whose KV cache serves every continuation; optionally also a greedy continuation of
        `greedy_tokens` tokens (decoded from the same cache)."""
        # logits_to_keep=1: the prefix needs only its last position's logits, not a vocabulary-sized
        # projection of every context token
        out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True, logits_to_keep=1)
        cache, first = output_cache(out), torch.log_softmax(out.logits[0, -1].float(), -1)
        greedy = []
        if greedy_tokens:
            greedy = self._greedy(cache, first, greedy_tokens)
            _crop_to(cache, len(prefix))
        if not conts:
            return [], greedy
        if self.batch_options:
            return self._batched(cache, first, len(prefix), conts), greedy
        result = []
        for c in conts:
            result.append(self._batched(cache, first, len(prefix), [c]))
            _crop_to(cache, len(prefix))
        return [r[0] for r in result], greedy

    def _batched(self, cache, first: torch.Tensor, n_prefix: int, conts: Sequence[list[int]]) -> list[np.ndarray]:
        """All continuations as one right-padded batch over the prefix cache (expanded in place)."""
        width = max(len(c) for c in conts) - 1
        rows = [[first[c[0]].item()] for c in conts]
        if width > 0:
            inp = torch.full((len(conts), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(conts), n_prefix + width), dtype=torch.long)
            mask[:, :n_prefix] = 1
            for i, c in enumerate(conts):
                inp[i, : len(c) - 1] = torch.tensor(c[:-1])
                mask[i, n_prefix: n_prefix + len(c) - 1] = 1
            if len(conts) > 1:
                cache.batch_repeat_interleave(len(conts))
            logits = self.model(input_ids=inp.to(self.device), attention_mask=mask.to(self.device),
                                use_cache=True, **{self.cache_arg: cache}).logits
            logp = torch.log_softmax(logits.float(), -1)
            for i, c in enumerate(conts):
                if len(c) > 1:
                    target = torch.tensor(c[1:], device=self.device)
                    rows[i] += logp[i, : len(c) - 1].gather(-1, target[:, None])[:, 0].tolist()
        return [np.asarray(r, dtype=np.float64) for r in rows]

    def _greedy(self, cache, first: torch.Tensor, n: int) -> list[int]:
        tokens, nxt = [], int(first.argmax())
        for step in range(n):
            tokens.append(nxt)
            if nxt == self.tokenizer.eos_token_id or step == n - 1:
                break
            out = self.model(input_ids=torch.tensor([[nxt]], device=self.device), use_cache=True,
                             **{self.cache_arg: cache})
            nxt = int(out.logits[0, -1].argmax())
        return tokens

    @torch.inference_mode()
    def separate_logprobs(self, prefix: list[int], conts: Sequence[list[int]]) -> list[np.ndarray]:
        """Reference: each continuation scored in its own full-sequence pass (no cache reuse)."""
        result = []
        for c in conts:
            ids = torch.tensor([prefix + c], device=self.device)
            # logits of the positions that predict the continuation (the last one predicts nothing)
            logits = self.model(input_ids=ids, logits_to_keep=len(c) + 1).logits[0, :-1]
            logp = torch.log_softmax(logits.float(), -1)
            result.append(logp[torch.arange(len(c)), torch.tensor(c, device=self.device)].double().cpu().numpy())
        return result

    def unconditional(self, conts: Sequence[list[int]]) -> np.ndarray:
        """log P(option | "Answer:") per option, memoised: the same options recur in every
        condition (closed, rag, oracle) a model is evaluated under."""
        key = tuple(map(tuple, conts))
        if key not in self._uncond:
            lps, _ = self.continuation_logprobs(self.specials + self.encode(UNCONDITIONAL_PREFIX), conts)
            self._uncond[key] = np.array([lp.sum() for lp in lps])
        return self._uncond[key]

    # --- questions ---------------------------------------------------------------------------
    def score(self, q: Question, context: str | None = None) -> dict:
        """Scores of every option in every mode, the prediction per mode, and for cloze/short
        questions the target's mean log-likelihood and exact match of a greedy continuation."""
        start = time.perf_counter()
        prefix, truncated = self.prompt_ids(q, context)
        conts = [self.continuation_ids(o) for o in q.options]
        open_ended = q.kind in ("cloze", "short")
        target = self.continuation_ids(q.answer_text) if open_ended else []
        extra = [target] if open_ended and not q.options else []
        # one token past the target shows whether the reply's word ends where the target's does
        lps, greedy = self.continuation_logprobs(prefix, conts + extra, len(target) + 1 if open_ended else 0)
        rec: dict = {"prompt_tokens": len(prefix), "truncated": truncated}
        if conts:
            uncond = self.unconditional(conts)
            raw = np.array([lp.sum() for lp in lps[: len(conts)]])
            scores = {
                "raw": raw,
                "length_norm": raw / np.array([len(c) for c in conts]),
                "char_norm": raw / np.array([max(1, len(o.strip())) for o in q.options]),
                "calibrated": raw - uncond,
            }
            rec["scores"] = {m: [round(float(x), 5) for x in s] for m, s in scores.items()}
            rec["predicted"] = {m: int(np.argmax(s)) for m, s in scores.items()}
        if open_ended:
            target_lp = lps[q.answer] if q.options else lps[-1]
            rec["target_logprob"] = float(target_lp.mean())
            rec["greedy"] = self.tokenizer.decode(greedy, skip_special_tokens=True)
            rec["exact_match"] = exact_match(rec["greedy"], q.answer_text, prefix=True)
        rec["seconds"] = time.perf_counter() - start
        return rec

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --- generative answering through any backend ------------------------------------------------
_FINAL = re.compile(r"answer\s*(?:is)?\s*[:：]?\s*\(?\s*([A-J])\s*\)?(?![A-Za-z])", re.I)
_PAREN = re.compile(r"\(([A-J])\)")
_LEAD = re.compile(r"^\s*\(?([A-J])[).:]?(?:\s|$)")


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(options))


def mc_messages(q: Question, context: str | None = None, examples: Sequence[Question] = (),
                chain_of_thought: bool = False) -> list[dict[str, str]]:
    """Chat messages for a multiple-choice question; solved `examples` go first as earlier turns."""
    how = ("Think step by step, then end with the line \"Answer: (X)\" where X is the letter of the correct option."
           if chain_of_thought else "Reply with the letter of the correct option, as \"Answer: (X)\".")

    def user(question: Question, ctx: str | None) -> str:
        head = f"{ctx.strip()}\n\n" if ctx else ""
        return f"{head}Question: {question.question}\n{format_options(question.options)}\n\n{how}"

    messages = []
    for ex in examples:
        messages += [{"role": "user", "content": user(ex, None)},
                     {"role": "assistant", "content": f"Answer: ({chr(65 + ex.answer)})"}]
    return messages + [{"role": "user", "content": user(q, context)}]


def parse_answer(text: str, options: Sequence[str]) -> int:
    """The chosen option's index from a generated reply, or -1. Tries, in order: the last
    "Answer: (B)" / "answer is B", the last "(B)", a reply that starts with "B", the only option
    whose text the reply contains."""
    n = len(options)
    for pattern, pick in ((_FINAL, -1), (_PAREN, -1)):
        found = [m.group(1).upper() for m in pattern.finditer(text)]
        found = [f for f in found if ord(f) - 65 < n]
        if found:
            return ord(found[pick]) - 65
    m = _LEAD.match(text)
    if m and ord(m.group(1)) - 65 < n:
        return ord(m.group(1)) - 65
    norm = normalize_answer(text)
    hits = [i for i, o in enumerate(options) if normalize_answer(o) and normalize_answer(o) in norm]
    return hits[0] if len(hits) == 1 else -1
