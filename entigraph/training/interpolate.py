"""Weight interpolation between the base and the trained model (WiSE-FT, Wortsman et al. 2022):
theta = (1 - alpha) * theta_base + alpha * theta_trained.

alpha = 1 is the trained model and alpha = 0 the base model, both bit for bit (the endpoints are
copied, not computed). Parameters are visited once each (`named_parameters` lists a tied tensor
once: mixing the state dict key by key would mix tied embeddings twice); floating buffers are mixed
like parameters, others (integer counters, masks) must agree and are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..io import share_folder


def interpolate_(model: torch.nn.Module, base: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """Mix `base`'s weights into `model` in place: model = (1 - alpha) * base + alpha * model."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    theirs = dict(base.named_parameters())
    theirs.update(dict(base.named_buffers()))
    ours = list(model.named_parameters()) + list(model.named_buffers())
    missing = [n for n, _ in ours if n not in theirs]
    if missing:
        raise ValueError(f"the base model lacks {len(missing)} tensors of the trained one (e.g. {missing[0]}): "
                         "not the same architecture")
    with torch.no_grad():
        for name, t in ours:
            b = theirs[name]
            if t.shape != b.shape:
                raise ValueError(f"{name}: shape {tuple(t.shape)} against the base model's {tuple(b.shape)}")
            if not t.is_floating_point():
                if not torch.equal(t, b):
                    raise ValueError(f"{name}: a non-float tensor that differs from the base model's")
                continue
            if alpha == 0.0:
                t.copy_(b)
            elif alpha != 1.0:
                t.copy_(torch.lerp(b.to(t.dtype), t, alpha))  # b + alpha (t - b): equal tensors stay exact
    return model


def interpolate_folder(base_path: str | Path, trained_path: str | Path, alpha: float, out: str | Path) -> Path:
    """Write the mix of two Hugging Face model folders as a third (tokenizer and config of the
    trained one), aside and renamed, so a kill never leaves half a folder; `out` may be
    `trained_path` itself (new files: hard links into a store stay intact)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    tmp = out.with_name(out.name + ".mix.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(trained_path, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    interpolate_(model, base, alpha)
    del base
    model.save_pretrained(tmp)
    # local_files_only: the saved tokenizer_config records it, and the same mix must give the same
    # bytes whatever the environment (the eval cache digests the folder)
    AutoTokenizer.from_pretrained(trained_path, local_files_only=True).save_pretrained(tmp)
    share_folder(tmp)  # save_pretrained leaves model.safetensors 0600
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out
