"""Prompt templates: one file per mode in entigraph/synthesis/templates/, overridable with synthesis.templates_dir.

A template file is a header of ``# key: value`` lines (``version`` is required; ``max_new_tokens``
and the sampling keys override backend.sampling for that mode), then ``[system]`` and ``[user]``
sections. Placeholders are ``{title}``, ``{context}``, ``{entities}``, ``{entity_1}``..``{entity_3}``,
and for Active Reading ``{count}`` (strategies asked for) and ``{strategy}`` (the one to apply);
substitution is one pass over the template, so braces inside the corpus text are left alone.

The generator-free modes (``GENERATOR_FREE``) have no template; ``active_reading`` has two, its
first step's (``active_reading_plan.txt``: propose strategies) and its second's (apply one).

The version that identifies a template (and so the synthetic passages made with it) is the declared
version plus a hash of the text: editing a template without bumping its version still makes a
resumed run regenerate, instead of silently mixing passages from two prompts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import SamplingConfig
from ..errors import ConfigError
from ..modes import GENERATOR_FREE, LLM_MODES

SHIPPED_DIR = Path(__file__).parent / "templates"
MODES = LLM_MODES  # the modes with a template (the registry: entigraph/modes.py)
PLAN = "active_reading_plan"  # active_reading's first step: a template, not a mode
PLACEHOLDERS = {"title", "context", "entities", "entity_1", "entity_2", "entity_3", "count", "strategy"}
SAMPLING_KEYS = {f.name: f.type for f in dataclasses.fields(SamplingConfig)}
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    mode: str
    version: str  # "<declared>+<hash of the file>"
    system: str
    user: str
    overrides: dict  # sampling settings from the header
    path: str

    def sampling(self, base: SamplingConfig) -> SamplingConfig:
        return dataclasses.replace(base, **self.overrides)

    def render(self, *, title: str, context: str, entities: list[str], **extra: str) -> list[dict[str, str]]:
        values = {
            "title": title, "context": context,
            "entities": _join(entities) or "the main people, places and things",
            "count": "", "strategy": "", **{k: str(v) for k, v in extra.items()},
        }
        for i in range(3):
            values[f"entity_{i + 1}"] = entities[i] if i < len(entities) else ""
        messages = [{"role": "system", "content": _fill(self.system, values)}] if self.system else []
        return messages + [{"role": "user", "content": _fill(self.user, values)}]


def _join(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _fill(text: str, values: dict[str, str]) -> str:
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def parse_template(text: str, mode: str, path: str = "") -> Template:
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped.startswith("#"):
            key, sep, value = stripped.lstrip("#").partition(":")
            if sep and key.strip() in {"version"} | set(SAMPLING_KEYS):
                header[key.strip()] = value.strip()
            continue
        if stripped in ("[system]", "[user]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        if current is None:
            if stripped:
                raise ConfigError(f"{path}:{lineno}: text before [system] or [user]")
            continue
        current.append(line)
    if "version" not in header:
        raise ConfigError(f"{path}: missing a '# version: N' header line")
    if "user" not in sections:
        raise ConfigError(f"{path}: missing a [user] section")
    system, user = ("\n".join(sections.get(k, [])).strip() for k in ("system", "user"))
    unknown = {m for m in _FIELD.findall(system + user)} - PLACEHOLDERS
    if unknown:
        raise ConfigError(f"{path}: unknown placeholder {{{sorted(unknown)[0]}}} "
                          f"(known: {', '.join(sorted(PLACEHOLDERS))})")
    if "{context}" not in user:
        raise ConfigError(f"{path}: the [user] section must contain {{context}}")
    overrides = {}
    for key, value in header.items():
        if key == "version":
            continue
        try:
            overrides[key] = int(value) if SAMPLING_KEYS[key] in (int, "int") else float(value)
        except ValueError:
            raise ConfigError(f"{path}: header {key}: {value!r} is not a number") from None
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return Template(mode, f"{header['version']}+{digest}", system, user, overrides, path)


def load_templates(templates_dir: str | None = None, modes: tuple[str, ...] | list[str] = MODES) -> dict[str, Template]:
    """Templates for `modes` (keyed by mode; active_reading brings PLAN too; generator-free modes
    have none): from `templates_dir` where it has `<name>.txt`, else the shipped ones."""
    if templates_dir and not Path(templates_dir).is_dir():
        raise ConfigError(f"synthesis.templates_dir: {templates_dir} is not a folder")
    out = {}
    for mode in modes:
        if mode in GENERATOR_FREE:
            continue
        if mode not in MODES:
            raise ConfigError(f"synthesis.modes: unknown mode {mode!r}")
        for name in (PLAN, mode) if mode == "active_reading" else (mode,):
            path = Path(templates_dir) / f"{name}.txt" if templates_dir else None
            if path is None or not path.is_file():
                path = SHIPPED_DIR / f"{name}.txt"
            out[name] = parse_template(path.read_text(encoding="utf-8"), name, str(path))
    return out
