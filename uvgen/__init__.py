"""UV position-map ground truth: data formats, geometry, rasterisation, synthetic data."""
