"""Build face3d's BFM.mat, BFM_info.mat and BFM_UV.mat from the downloaded files, without Matlab.

Usage:
    python -m pipeline.convert_bfm --basel 01_MorphableModel.mat --info model_info.mat \
        --expression Model_Expression.mat --tri-mouth Model_tri_mouth.mat --uv BFM_UV.mat --out DIR

``01_MorphableModel.mat`` comes with the Basel Face Model (2009), ``model_info.mat``,
``Model_Expression.mat`` and ``Model_tri_mouth.mat`` with 3DDFA, ``BFM_UV.mat`` with 3DMMasSTN.
The output directory is what the project's ``model_dir`` settings point to.
"""

from __future__ import annotations

import argparse
import sys

from uvgen.formats.basel import convert_basel, write_face3d_bfm
from uvgen.formats.errors import DataError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basel", required=True, help="Basel 01_MorphableModel.mat")
    parser.add_argument("--info", required=True, help="3DDFA model_info.mat")
    parser.add_argument("--expression", required=True, help="3DDFA Model_Expression.mat")
    parser.add_argument("--tri-mouth", required=True, help="3DDFA Model_tri_mouth.mat")
    parser.add_argument("--uv", required=True, help="3DMMasSTN BFM_UV.mat")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    args = parser.parse_args(argv)
    try:
        model = convert_basel(args.basel, args.info, args.expression, args.tri_mouth, args.uv)
        paths = write_face3d_bfm(model, args.out, model_info_mat=args.info)
    except DataError as err:
        sys.exit(f"convert_bfm: {err}")
    print(
        f"convert_bfm: {model.n_vertices} vertices, "
        f"{len(model.tri)} + {len(model.tri_mouth)} triangles -> "
        + ", ".join(str(p) for p in paths)
    )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
