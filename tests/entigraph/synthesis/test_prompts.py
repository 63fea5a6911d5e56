import pytest

from entigraph.config import SamplingConfig
from entigraph.errors import ConfigError
from entigraph.synthesis.prompts import GENERATOR_FREE, MODES, PLAN, load_templates, parse_template


def test_shipped_templates_load_and_put_the_context_first():
    templates = load_templates()
    assert set(templates) == set(MODES) | {PLAN}  # active_reading's first step has a template of its own
    for mode, t in templates.items():
        assert t.version.startswith("1+")
        msgs = t.render(title="Tides", context="CONTEXT-TEXT", entities=["Mara Velt", "Oskar Brenn", "Lumen Bay"],
                        count=3, strategy="STRATEGY-TEXT")
        user = msgs[-1]["content"]
        if mode == "active_reading":
            assert "STRATEGY-TEXT" in user
        if mode == PLAN:
            assert "Propose 3 " in user
        assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
        assert user.index("CONTEXT-TEXT") < len(user) // 2  # context first, then the instruction
        assert "{" not in user and "JSON" not in user
        if mode in ("pair", "triple"):
            assert "Mara Velt" in user and "Oskar Brenn" in user
        if mode == "triple":
            assert "Lumen Bay" in user


def test_braces_in_the_corpus_are_left_alone():
    t = load_templates(modes=["pair"])["pair"]
    user = t.render(title="T", context="a {entity_1} {weird} }{ text", entities=["A", "B"])[-1]["content"]
    assert "a {entity_1} {weird} }{ text" in user


def test_override_dir_header_and_version(tmp_path):
    (tmp_path / "pair.txt").write_text("# version: 7\n# max_new_tokens: 99\n# temperature: 0.2\n"
                                       "[user]\n{context}\nRelate {entity_1} and {entity_2}.\n")
    templates = load_templates(str(tmp_path), ["pair", "triple"])
    pair = templates["pair"]
    assert pair.version.startswith("7+") and templates["triple"].path.endswith("templates/triple.txt")
    s = pair.sampling(SamplingConfig())
    assert (s.max_new_tokens, s.temperature, s.top_p) == (99, 0.2, SamplingConfig().top_p)
    assert [m["role"] for m in pair.render(title="", context="c", entities=["A", "B"])] == ["user"]
    (tmp_path / "pair.txt").write_text((tmp_path / "pair.txt").read_text() + "Be brief.\n")
    assert load_templates(str(tmp_path), ["pair"])["pair"].version != pair.version  # edits change identity


@pytest.mark.parametrize("text, message", [
    ("[user]\n{context}\n", "version"),
    ("# version: 1\n[user]\n{context} {nope}\n", "unknown placeholder"),
    ("# version: 1\n[user]\nno context here\n", "{context}"),
    ("# version: 1\n[system]\nhi\n", "[user]"),
    ("# version: 1\nstray\n[user]\n{context}\n", "before"),
    ("# version: 1\n# max_new_tokens: lots\n[user]\n{context}\n", "not a number"),
])
def test_bad_templates_raise_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("{", r"\{")):
        parse_template(text, "pair", "pair.txt")


def test_missing_templates_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="templates_dir"):
        load_templates(str(tmp_path / "nope"))


def test_generator_free_modes_have_no_template_and_unknown_modes_are_errors():
    assert load_templates(modes=list(GENERATOR_FREE)) == {}
    assert set(load_templates(modes=["permute", "explain"])) == {"explain"}
    with pytest.raises(ConfigError, match="unknown mode 'nonsense'"):
        load_templates(modes=["nonsense"])
