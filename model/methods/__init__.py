"""The methods the benchmark compares, registered by name (:mod:`model.methods.registry`)."""
