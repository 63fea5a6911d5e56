import pytest

from entigraph.config import RunConfig, load_config
from entigraph.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_nested_values(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\nbackend:\n  sampling:\n    temperature: 0.5\n"))
    assert cfg.name == "x"
    assert cfg.backend.sampling.temperature == 0.5
    assert cfg.backend.sampling.top_p == 0.9  # untouched default
    assert cfg.out.as_posix() == "runs/x"


def test_overrides_are_typed(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\n"), [
        "synthesis.max_passages=12", "train.deepspeed=null", "eval.conditions=[base_closed]",
        "train.bf16=false", "train.lr=1e-4",
    ])
    assert cfg.synthesis.max_passages == 12
    assert cfg.train.deepspeed is None
    assert cfg.eval.conditions == ["base_closed"]
    assert cfg.train.bf16 is False
    assert cfg.train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("text,overrides,message", [
    ("synthesis:\n  tempreature: 1\n", [], "did you mean"),
    ("name: x\n", ["backend.batch_size=many"], "backend.batch_size: expected an integer"),
    ("name: x\n", ["backend.kind=gpt"], "backend.kind"),
    ("name: x\n", ["train.replay.fraction=1.5"], "train.replay.fraction"),
    ("- a list\n", [], "top level must be a mapping"),
    ("name: [unclosed\n", [], "not valid YAML"),
    ("name: x\n", ["novalue"], "key=value"),
])
def test_invalid_settings_raise_one_line_errors(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(write(tmp_path, text), overrides)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_are_valid():
    from pathlib import Path

    configs = sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml"))
    assert configs, "configs/*.yaml missing"
    from entigraph.selfguide.settings import load_config as load_selfguide

    for path in configs:
        if path.name.startswith("selfguide"):
            assert load_selfguide(path).name
        else:
            assert isinstance(load_config(path), RunConfig)
