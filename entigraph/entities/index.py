"""Which entities a text mentions, by canonical name or alias (word sequences)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..records import Entity
from ..text import words


@dataclass
class EntityIndex:
    """Surface forms (canonical names and aliases, as word sequences) -> entity ids."""

    forms: dict[str, set[str]] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)  # lowercase name -> its forms
    max_len: int = 1

    @classmethod
    def build(cls, entities: Iterable[Entity]) -> "EntityIndex":
        index = cls()
        for ent in entities:
            forms = {" ".join(words(s)) for s in [ent.name, *ent.aliases]} - {""}
            for form in forms:
                index.forms.setdefault(form, set()).add(ent.entity_id)
                index.max_len = max(index.max_len, len(form.split()))
            index.by_name.setdefault(ent.name.lower(), set()).update(forms)
        return index

    def grams(self, text: str) -> set[str]:
        toks = words(text)
        n_max = min(self.max_len, 8)
        return {" ".join(toks[i:i + n]) for n in range(1, n_max + 1) for i in range(len(toks) - n + 1)}

    def found(self, text: str) -> set[str]:
        """Ids of the entities mentioned in `text` by name or alias."""
        return {eid for g in self.grams(text) & self.forms.keys() for eid in self.forms[g]}

    def mentioned(self, name: str, grams: set[str]) -> bool:
        forms = self.by_name.get(name.lower()) or {" ".join(words(name))}
        return bool(forms & grams)
