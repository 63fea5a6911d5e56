"""`entigraph settings train.mixture` explains one item of the list, not only `list of (MixtureSource)`."""

from entigraph.cli import main


def test_a_list_of_sections_shows_the_fields_of_an_item(capsys):
    assert main(["settings", "train.mixture"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train.mixture: list of (MixtureSource) = ")
    keys = [line.split(":")[0] for line in lines[1:]]
    assert keys == ["train.mixture[].source", "train.mixture[].modes", "train.mixture[].paths",
                    "train.mixture[].epochs", "train.mixture[].share"]
    assert any(line.startswith("train.mixture[].share: float in (0, 1) or null = None  # ") for line in lines)
