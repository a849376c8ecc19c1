"""Stage `face_model`: generate the embedded procedural morphable model in face3d's BFM layout."""

from __future__ import annotations

import argparse

from pipeline.config import DEFAULT_PARAMS, load_params
from uvgen.formats.bfm import save_bfm
from uvgen.synth.facemodel import make_face_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    p = load_params(args.params).face_model
    model = make_face_model(n_vertices=p.n_vertices, seed=p.seed)
    save_bfm(model, p.out_dir)
    print(
        f"face model: {model.n_vertices} vertices, {len(model.full_triangles)} triangles "
        f"-> {p.out_dir}"
    )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
