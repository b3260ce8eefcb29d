"""Builders of tiny models and datasets for tests, benchmarks and plugin authors (no hub needed), and the
plugin conformance checker (:func:`check_model`, :func:`check_task`)."""

from .check import check_model, check_task

__all__ = ["check_model", "check_task"]
