"""The report kit: escaping in both table kinds, and the two percentage formats kept apart."""

from entigraph.reporting import Html, html_table, md_table, pct, points


def test_html_table_escapes_everything_but_markup_the_caller_built():
    page = html_table(["a<b"], [["<script>", Html("<b>ok</b>")]], cls="x")
    assert page.startswith('<table class="x">') and "&lt;script&gt;" in page and "<b>ok</b>" in page
    assert "a&lt;b" in page and html_table(["h"], []).startswith("<table><thead>")


def test_md_table_escapes_pipes_and_aligns_named_columns_right():
    lines = md_table(["mode", "tokens"], [["a | b", 12]], right=["tokens"])
    assert lines == ["| mode | tokens |", "|---|---:|", "| a \\| b | 12 |"]


def test_a_share_and_points_are_different_scales():
    assert pct(0.45) == "45.0 %" and pct(None) == "–" and pct(0.5, 0) == "50 %"
    assert points(45.0) == "45" and points(45.25) == "45.2"
