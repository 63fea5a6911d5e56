"""The installed package layout matches the folders: nothing left out of a wheel, no top-level name
as generic as `eval` or `training` installed into a user's environment."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"retrieval": "entigraph.retrieval", "training": "entigraph.training", "eval": "entigraph.eval"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_name(folder: Path) -> str:
    parts = folder.relative_to(ROOT).parts
    return ".".join((MAPPED.get(parts[0], parts[0]),) + parts[1:])


def test_every_package_folder_is_installed():
    folders = [p.parent for top in ("entigraph", *MAPPED) for p in (ROOT / top).rglob("__init__.py")]
    assert sorted(map(_package_name, folders)) == sorted(_setuptools()["packages"])


def test_generic_folders_install_under_the_entigraph_namespace():
    assert _setuptools()["package-dir"] == {name: folder for folder, name in MAPPED.items()}


def test_mapped_packages_import_under_entigraph():
    import entigraph.eval.stats
    import entigraph.retrieval.chunking
    import entigraph.training.data

    for module, folder in ((entigraph.eval.stats, "eval"), (entigraph.retrieval.chunking, "retrieval"),
                           (entigraph.training.data, "training")):
        assert Path(module.__file__).parent == ROOT / folder
