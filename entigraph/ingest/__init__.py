"""Readers for documents as people keep them: PDF, HTML, Word, PowerPoint.

Each reader, `read_<format>` in the module of that name, turns one file into clean text plus
provenance (`Extracted`), or raises `FileSkipped` with one reason. A reader's library is imported
only when a file of its format turns up, so a plain-text corpus never pays for it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .base import Extracted, FileSkipped

__all__ = ["Extracted", "FileSkipped", "FORMATS", "read_document"]

FORMATS = ("pdf", "html", "docx", "pptx")


def read_document(path: Path, fmt: str) -> Extracted:
    """Read one file; any failure inside a parser becomes a FileSkipped naming the file."""
    try:
        module = importlib.import_module(f".{fmt}", __name__)
        return getattr(module, f"read_{fmt}")(path)
    except FileSkipped:
        raise
    except ImportError as e:
        raise FileSkipped(path, f"reading {fmt} files needs the package {e.name!r}; install it") from None
    except OSError as e:
        raise FileSkipped(path, f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # a damaged file can break a parser in any way; one file never stops a corpus
        detail = " ".join(str(e).split())[:200]
        raise FileSkipped(path, f"corrupt {fmt.upper()} file ({type(e).__name__}: {detail})") from None
