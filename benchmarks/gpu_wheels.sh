#!/usr/bin/env bash
# Download, on this machine, the wheels the GPU machine's Python (3.12, x86-64) lacks for
# benchmarks/gpu_check.sh: hdf5plugin (blosc-lz4 HDF5), dask and distributed (the UV build) and
# their own needs that image does not hold. They land in .whl/ (ignored by git through
# .git/info/exclude); the device run carries `.whl` and gpu_check.sh installs them with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
PY=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl
for pkg in hdf5plugin dask distributed partd locket zict tblib tornado; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "$pkg"
done
du -sh .whl; ls .whl
