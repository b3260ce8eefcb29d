"""Builders of tiny models and datasets for tests, benchmarks and plugin authors (no hub needed), and the
plugin conformance checker (:func:`check_model`, :func:`check_task`)."""

from .check import check_model, check_task
from .data import make_classification_dataset, make_winoground_dataset, winoground_rows, write_dataset
from .models import (TinyOpenCLIP, make_clip_tokenizer, make_tiny_openclip, make_tiny_sd_pipeline,
                     register_tiny_openclip_arch)

__all__ = ["check_model", "check_task", "make_classification_dataset", "make_winoground_dataset", "winoground_rows",
           "write_dataset", "TinyOpenCLIP", "make_clip_tokenizer", "make_tiny_openclip", "make_tiny_sd_pipeline",
           "register_tiny_openclip_arch"]
