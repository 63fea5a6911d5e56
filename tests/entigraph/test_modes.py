"""The registry of synthesis modes (entigraph/modes.py) and the leaf modules synthesis ids live in."""

import ast
import typing
from pathlib import Path

from entigraph import config, modes
from entigraph.synthesis import ids
from entigraph.synthesis.prompts import SHIPPED_DIR, load_templates



def imported(path: Path) -> set[str]:
    """Modules a file imports, relative ones written with their dots."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_config_takes_its_modes_from_the_registry():
    assert typing.get_args(config.SynthesisMode) == modes.NAMES
    assert len(set(modes.NAMES)) == len(modes.NAMES)


def test_every_llm_mode_ships_a_template_and_no_generator_free_one_has_one():
    shipped = {p.stem for p in SHIPPED_DIR.glob("*.txt")}
    assert set(modes.LLM_MODES) <= shipped
    assert not set(modes.GENERATOR_FREE) & shipped
    assert set(load_templates(modes=list(modes.NAMES))) == set(modes.LLM_MODES) | {"active_reading_plan"}


def test_kinds_partition_the_modes():
    assert set(modes.GENERATOR_FREE) | set(modes.LLM_MODES) == set(modes.NAMES)
    assert not modes.needs_backend(modes.GENERATOR_FREE) and modes.needs_backend(["permute", "pair"])
    assert modes.needs_units(["pair"], "units") and not modes.needs_units(["pair", "summary"], "coverage")
    assert set(modes.REWRITES) < set(modes.UNIT_MODES) and "pair" not in modes.UNIT_MODES


def test_registry_and_ids_are_leaves():
    """config.py imports the registry: it must not pull synthesis (or anything heavy) in; the ids
    module is what engine, planner and sampler share, so it imports none of them."""
    assert imported(Path(modes.__file__)) <= {"__future__", "collections.abc", "dataclasses"}
    assert imported(Path(ids.__file__)) <= {"__future__", "hashlib", "json", "typing"}
