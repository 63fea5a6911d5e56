import pytest

from entigraph.backends.base import Request
from entigraph.backends.hf import HFBackend
from entigraph.config import SamplingConfig

SAMPLING = SamplingConfig(max_new_tokens=8)


@pytest.fixture(scope="module")
def backend(tiny_lm):
    b = HFBackend(tiny_lm, device="cpu", batch_size=3)
    yield b
    b.close()


def req(text: str, seed: int | None = 1, sampling: SamplingConfig = SAMPLING) -> Request:
    return Request([{"role": "user", "content": text}], sampling, seed)


def test_chat_template_and_fp32_on_cpu(backend):
    import torch

    assert backend.dtype == torch.float32  # measured faster than bf16 for generation on CPU
    assert backend.render([{"role": "user", "content": "hi"}]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_results_come_back_in_request_order(backend):
    texts = ["Mara " * n for n in (9, 1, 30, 4, 17)]  # unsorted lengths, more than one batch
    mixed = [req(t) for t in texts] + [req("x", sampling=SamplingConfig(max_new_tokens=3))]
    gens = backend.generate(mixed)
    assert len(gens) == len(mixed)
    for g, r in zip(gens, mixed):
        assert g.prompt_tokens == backend.count_tokens(backend.render(r.messages))
        assert g.finish_reason in ("stop", "length") and g.error == ""
        assert 0 < g.completion_tokens <= r.sampling.max_new_tokens
    assert gens[-1].completion_tokens <= 3


def test_same_seeds_same_text_other_seeds_other_text(backend):
    batch = [req(f"Oskar Brenn {i}", seed=i) for i in range(3)]
    first, again = backend.generate(batch), backend.generate(batch)
    assert [g.text for g in first] == [g.text for g in again]
    other = backend.generate([req(f"Oskar Brenn {i}", seed=i + 100) for i in range(3)])
    assert [g.text for g in other] != [g.text for g in first]


def test_greedy_when_temperature_is_zero(backend):
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=6)
    a = backend.generate([req("Lumen Bay", seed=1, sampling=greedy)])
    b = backend.generate([req("Lumen Bay", seed=2, sampling=greedy)])
    assert a[0].text == b[0].text


def test_a_prompt_too_long_fails_alone(backend, monkeypatch):
    monkeypatch.setattr(backend, "max_positions", 40)
    gens = backend.generate([req("short"), req("Harbour Guild " * 40), req("also short")])
    assert [g.finish_reason == "error" for g in gens] == [False, True, False]
    assert "no room" in gens[1].error and gens[1].prompt_tokens > 30


def test_vllm_backend_without_vllm_names_the_fix(monkeypatch, tmp_path):
    import builtins

    from entigraph.backends.vllm import VLLMBackend
    from entigraph.config import VLLMConfig
    from entigraph.errors import ConfigError

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm":
            raise ImportError("no vllm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CACHE_ROOT", "VLLM_NO_USAGE_STATS", "VLLM_ENABLE_V1_MULTIPROCESSING"):
        monkeypatch.setenv(var, "")  # recorded, so the test's own settings are undone afterwards
        monkeypatch.delenv(var)
    with pytest.raises(ConfigError, match="vllm_cpu_setup.sh"):
        VLLMBackend("model", VLLMConfig(), cache_root=tmp_path, on_cpu=True)
    import os

    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "2" and os.environ["VLLM_CACHE_ROOT"] == str(tmp_path)
