"""Sentence embeddings through sentence-transformers, L2-normalised so inner product = cosine.

Any model name or folder works; the default (all-MiniLM-L6-v2) resolves offline to the copy shipped
inside a PyPI package (entigraph.models.resolve_embedder). Anything callable as
``embed(texts) -> float32 array (n, d)`` can stand in for an Embedder (tests inject one).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from entigraph.models import resolve_embedder

EmbedFn = Callable[[Sequence[str]], np.ndarray]


class Embedder:
    def __init__(self, name: str, device: str | None = None, batch_size: int = 32, show_progress: bool = True):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(resolve_embedder(name), device=device)
        self.batch_size = batch_size
        self.show_progress = show_progress

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def max_tokens(self) -> int:
        """Longer inputs are truncated by the model: chunks should stay below this."""
        return int(self.model.max_seq_length)

    def __call__(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        show = self.show_progress if progress is None else progress
        vecs = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=show and len(texts) > self.batch_size,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def normalize(vecs: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (for injected embedding functions that do not normalise)."""
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12))
