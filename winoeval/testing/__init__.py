"""Builders of tiny models and datasets for tests, benchmarks and plugin authors (no hub needed)."""
