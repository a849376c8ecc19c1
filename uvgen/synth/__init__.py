"""The embedded procedural face model, its renderer and the synthetic data-set writers."""
