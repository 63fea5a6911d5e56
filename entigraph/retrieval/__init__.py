"""Retrieval for the RAG conditions: chunking, embeddings, FAISS / BM25 / hybrid search."""

from .chunking import Chunk, chunk_document, chunk_documents, count_words, token_counter
from .hybrid import RECALL_KS, Hit, Retriever, document_recall, latency_summary, rrf

__all__ = [
    "Chunk", "chunk_document", "chunk_documents", "count_words", "token_counter",
    "RECALL_KS", "Hit", "Retriever", "document_recall", "latency_summary", "rrf",
]
