"""``prnet uv-assets`` and ``prnet export-posmaps``: UV files for other code (docs/uv_assets.md).

    prnet uv-assets --model-dir BFM_DIR --out DIR [--size S] [--mask-source model|prnet ...]
    prnet export-posmaps UV.h5 --out DIR [--layout face3d] [--jpeg-quality 95]

``uv-assets`` writes PRNet's ``Data/uv-data`` files (uv_kpt_ind.txt, face_ind.txt, triangles.txt,
canonical_vertices.npy, uv_face_mask.png, uv_weight_mask.png) for a face3d-layout model, at
``--size`` (256, PRNet's, by default; the size of the network they serve, ``uvgen.uv_size``);
``prnet predict --uv-data DIR`` and PRNet's own ``api.py`` read them. ``export-posmaps`` writes
each sample of a UV HDF5 file as face3d's example does: ``NAME.jpg`` crop + ``NAME.npy`` float32
map in crop pixels (the stored values, never JPEG-compressed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm


def uv_assets_command(args: argparse.Namespace) -> int:
    from model.uv_assets import write_uv_assets
    from uvgen.formats.bfm import load_bfm

    if args.mask_source == "prnet" and args.prnet_dir is None:
        raise SystemExit("prnet uv-assets: --mask-source prnet needs --prnet-dir")
    if args.mask_source == "prnet" and args.size != 256:
        raise SystemExit(
            "prnet uv-assets: --mask-source prnet has PRNet's 256x256 masks: --size 256"
        )
    paths = write_uv_assets(
        load_bfm(args.model_dir),
        args.out,
        mask_source=args.mask_source,
        prnet_dir=args.prnet_dir,
        size=args.size,
    )
    print(f"uv-assets: {len(paths)} files -> {args.out} (use with --uv-data {args.out})")
    return 0


def export_posmaps_command(args: argparse.Namespace) -> int:
    from uvgen.h5store import PositionMapFile
    from uvgen.posmap_export import export_posmaps

    with PositionMapFile(args.h5) as f:
        total = len(f)
    with tqdm(total=total, desc="export", unit="sample", file=sys.stderr) as bar:
        written = export_posmaps(
            args.h5, args.out, args.layout, args.jpeg_quality, progress=bar.update
        )
    print(f"export-posmaps: {len(written)} samples -> {args.out} ({args.layout} layout)")
    return 0


def _uv_size(text: str) -> int:
    from uvgen.checks import check_uv_size

    try:
        size = int(text)
        check_uv_size("--size", size)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--size: ")) from None
    return size


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``uv-assets`` and ``export-posmaps`` subcommands of ``prnet``."""
    p = sub.add_parser(
        "uv-assets",
        help="PRNet's uv-data files (key points, face pixels, triangles, canonical face, masks)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model-dir",
        required=True,
        type=Path,
        help="face3d-layout morphable model (BFM.mat, BFM_UV.mat, BFM_info.mat)",
    )
    p.add_argument("--out", required=True, type=Path, help="folder to write the files into")
    p.add_argument(
        "--size",
        type=_uv_size,
        default=256,
        help="UV map side in pixels, a multiple of 32 (default 256, PRNet's; e.g. 128, 512)",
    )
    p.add_argument(
        "--mask-source",
        choices=("model", "prnet"),
        default="model",
        help="face mask, key points and weights derived from the model (default) or PRNet's own",
    )
    p.add_argument(
        "--prnet-dir",
        type=Path,
        default=None,
        help="PRNet's uv-data folder (uv_face_mask.png, uv_weight_mask.png, uv_kpt_ind.txt)",
    )
    p.set_defaults(func=uv_assets_command)
    q = sub.add_parser(
        "export-posmaps",
        help="a UV HDF5 file as NAME.jpg + NAME.npy per sample (face3d's example layout)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("h5", type=Path, metavar="UV.h5", help="a merged UV file (prnet uvgen output)")
    q.add_argument("--out", required=True, type=Path, help="output folder")
    q.add_argument("--layout", choices=("face3d",), default="face3d", help="output layout")
    q.add_argument(
        "--jpeg-quality", type=int, default=95, help="JPEG quality of the crops (default 95)"
    )
    q.set_defaults(func=export_posmaps_command)
