"""Readers and writers for the real on-disk formats: 300W-LP, AFLW2000-3D and face3d's BFM."""
