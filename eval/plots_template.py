"""The offline page template for ``dvc plots show``: vega, vega-lite and vega-embed inlined, so
the CED plots render without network access (DVC's default page loads them from a CDN).

    python -m eval.plots_template --vega vega.min.js --vega-lite vega-lite.min.js \
        --vega-embed vega-embed.min.js --out .dvc/plots/offline.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

_NOTICE = """\
This page template inlines three JavaScript libraries so that `dvc plots show` renders without
network access. Each is distributed under the BSD 3-Clause licence:

  vega {vega}, vega-lite {vega_lite}, vega-embed {vega_embed}
  Copyright (c) 2015, University of Washington Interactive Data Lab. All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:
1. Redistributions of source code must retain the above copyright notice, this list of conditions
   and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials provided
   with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be used to
   endorse or promote products derived from this software without specific prior written
   permission.
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF
THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

The minified builds bundle further open-source modules under permissive licences that allow
redistribution with their notices: the d3 modules (ISC, Copyright Mike Bostock), topojson-client
(ISC, Copyright Mike Bostock), fast-json-patch (MIT, Copyright (c) 2017-2021 Joachim Wester),
json-stringify-pretty-compact (MIT, Copyright (c) Simon Lydell), semver (ISC, Copyright (c) Isaac
Z. Schlueter and Contributors), tslib (0BSD, Copyright (c) Microsoft Corporation) and the vega-*
modules (BSD-3-Clause, as above). ISC/MIT: permission to use, copy, modify and distribute this
software for any purpose with or without fee is granted, provided that the copyright notice and
this permission notice appear in all copies; the software is provided "as is", without warranty
of any kind.
Sources: https://github.com/vega/vega, https://github.com/vega/vega-lite,
https://github.com/vega/vega-embed (npm packages vega, vega-lite, vega-embed).
"""

_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")


def write_offline_template(
    out: str | Path,
    vega_js: str | Path,
    vega_lite_js: str | Path,
    vega_embed_js: str | Path,
    versions: dict[str, str] | None = None,
) -> Path:
    """An HTML page template for ``dvc plots show --html-template`` with the three libraries
    inlined (no ``{scripts}`` placeholder, so DVC adds no CDN links); ``{plot_divs}`` and
    ``{refresh_tag}`` are DVC's placeholders. Licence notices are kept in the page header."""
    v = {"vega": "?", "vega_lite": "?", "vega_embed": "?", **(versions or {})}
    scripts = []
    for label, path in (
        ("vega", vega_js),
        ("vega-lite", vega_lite_js),
        ("vega-embed", vega_embed_js),
    ):
        js = Path(path).read_text(encoding="utf-8")
        bad = [p for p in (*_PLACEHOLDERS, "</script") if p in js]
        if bad:
            raise ValueError(f"{path}: contains {bad}, which would break the page template")
        scripts.append(f"<script>/* {label} (BSD-3-Clause, notice above) */\n{js}\n</script>")
    page = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n{refresh_tag}\n'
        "<title>DVC Plot (offline)</title>\n"
        f"<!--\n{_NOTICE.format(**v)}-->\n" + "\n".join(scripts) + "\n<style>\n  table "
        "{ border-spacing: 15px; }\n</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    t = argparse.ArgumentParser(description="write the offline `dvc plots show` page template")
    t.add_argument("--vega", required=True, help="vega build/vega.min.js (npm package vega@5)")
    t.add_argument(
        "--vega-lite", required=True, help="vega-lite build/vega-lite.min.js (vega-lite@5)"
    )
    t.add_argument(
        "--vega-embed", required=True, help="vega-embed build/vega-embed.min.js (vega-embed@6)"
    )
    t.add_argument("--versions", nargs=3, metavar=("VEGA", "VEGA_LITE", "VEGA_EMBED"), default=None)
    t.add_argument("--out", default=".dvc/plots/offline.html")
    args = t.parse_args(argv)
    versions = None
    if args.versions:
        versions = dict(zip(("vega", "vega_lite", "vega_embed"), args.versions))
    print(write_offline_template(args.out, args.vega, args.vega_lite, args.vega_embed, versions))


if __name__ == "__main__":
    main()
