"""eval.plots_template: the offline `dvc plots show` page (scripts inlined, DVC renders it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.plots_template import write_offline_template

PROJECT = Path(__file__).resolve().parents[2]


def test_offline_template_inlines_scripts_and_renders_with_dvc(tmp_path):
    from dvc_render.html import render_html
    from dvc_render.vega import VegaRenderer

    js = []
    for name in ("vega", "vega-lite", "vega-embed"):
        p = tmp_path / f"{name}.js"
        p.write_text(f"window['{name}'] = function () {{ return 1; }};")
        js.append(p)
    tpl = write_offline_template(
        tmp_path / "offline.html", *js, versions={"vega": "5", "vega_lite": "5", "vega_embed": "6"}
    )
    text = tpl.read_text()
    assert "{plot_divs}" in text and "{scripts}" not in text and "BSD" in text
    assert "window['vega-embed']" in text
    spec = {"anchor_definitions": {}, "template": "simple", "x": "nme", "y": "A"}
    renderer = VegaRenderer([{"nme": 0, "A": 0.1, "rev": "workspace"}], "ced.csv", **spec)
    page = Path(
        render_html([renderer], tmp_path / "out" / "index.html", html_template=tpl)
    ).read_text()
    assert "cdn.jsdelivr" not in page and "vegaEmbed" in page and "window['vega']" in page
    bad = tmp_path / "bad.js"
    bad.write_text("document.write('</script>')")
    with pytest.raises(ValueError, match="script"):
        write_offline_template(tmp_path / "x.html", bad, *js[1:])


def test_committed_offline_template_is_self_contained():
    tpl = PROJECT / ".dvc" / "plots" / "offline.html"
    if not tpl.is_file():
        pytest.skip("offline template not generated")
    text = tpl.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text
    assert "<script src" not in text and "BSD" in text and "University of Washington" in text
