"""The winoeval benchmark suite: ``python -m benchmarks`` (see BENCHMARKS.md)."""
