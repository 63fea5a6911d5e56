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
    ("name: x\n", ["train.mixture=[{source: replay, share: 1.5}]"], r"train.mixture\[0\].share must be < 1"),
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


@pytest.mark.parametrize("old,new", sorted(__import__("entigraph.config", fromlist=["MOVED"]).MOVED.items()))
def test_every_moved_key_names_its_new_place(tmp_path, old, new):
    *sections, key = old.split(".")
    value = "{temperature: 0.5}" if key == "sampling" else "{}" if key in ("openai", "vllm") else "x"
    nested = "".join(f"{'  ' * i}{s}:\n" for i, s in enumerate(sections)) + f"{'  ' * len(sections)}{key}: {value}\n"
    with pytest.raises(ConfigError, match=rf"^{old} moved to {new}$"):
        load_config(write(tmp_path, nested))
    with pytest.raises(ConfigError, match=rf"^{old} moved to {new}$"):
        load_config(None, [f"{old}={value}"])


def test_selfguide_moved_keys_name_their_new_place():
    from entigraph.selfguide.settings import load_config as load_selfguide

    with pytest.raises(ConfigError, match="^backend moved to backend.kind$"):
        load_selfguide(None, ["backend=hf", "val_tasks=[a]"])
    with pytest.raises(ConfigError, match="^model moved to backend.model$"):
        load_selfguide(None, ["model=x", "val_tasks=[a]"])
    assert load_selfguide(None, ["backend.kind=openai", "val_tasks=[a]"]).backend.kind == "openai"


@pytest.mark.parametrize("override,message", [
    ("synthesis.max_passages=-1", "synthesis.max_passages must be >= 1, got -1"),
    ("synthesis.max_passages=0", "synthesis.max_passages must be >= 1, got 0"),
    ("train.mixture=[{source: raw, epochs: 0}]", r"train.mixture\[0\].epochs must be > 0"),
    ("train.mixture=[]", "train.mixture is empty"),
    ("train.lr=-1", "train.lr must be > 0"),
    ("filter.near_dup.threshold=1.5", "filter.near_dup.threshold must be <= 1"),
    ("backend.sampling.top_p=0", "backend.sampling.top_p must be > 0"),
    ("filter.max_top_ngram_share=[0.2, 2, 0.1]", r"filter.max_top_ngram_share\[1\] must be <= 1"),
    ("train.lr=nan", "train.lr: expected a finite number"),
    ("eval.num_options=1", "eval.num_options must be >= 2"),
    ("name=../../escape", "not a valid run name"),
    ("name=/abs", "not a valid run name"),
    ("name=''", "not a valid run name"),
    ("name=", "name: expected a string, got None"),
    ("synthesis.modes=[pair, poem]", r"synthesis.modes\[1\]: 'poem' is not one of summary, pair, triple, rephrase"),
])
def test_values_are_range_checked_at_load(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value)


def test_yaml_errors_name_the_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:4:9: not valid YAML \(expected ',' or ']'"):
        load_config(write(tmp_path, "name: x\ntrain:\n  lr: [1e-4\n  epochs: 2\n"))


def test_settings_help_is_generated_from_the_declarations():
    from entigraph.config import describe

    lines = describe()
    assert any(line.startswith("backend.kind: hf | vllm | vllm-server | openai = 'hf'") for line in lines)
    assert any(line.startswith("synthesis.max_passages: int in [1, inf) or null = 64  # budget") for line in lines)
    assert any(line.startswith("train.replay.source: self | files | none = 'self'") for line in lines)
