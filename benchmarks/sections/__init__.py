"""One module per section of ``python -m benchmarks.run``."""
