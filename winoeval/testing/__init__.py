"""Builders of tiny models and datasets for tests, benchmarks and plugin authors (no hub needed), and the
plugin conformance checker (:func:`check_model`, :func:`check_task`)."""

from .check import check_model, check_task
from .data import make_classification_dataset, make_winoground_dataset, winoground_rows, write_dataset
from .models import (TinyOpenCLIP, dit_xl_2_config, make_clip_tokenizer, make_tiny_dit_pipeline,
                     make_tiny_flux_pipeline, make_tiny_openclip, make_tiny_sd3_pipeline, make_tiny_sd_pipeline,
                     register_tiny_openclip_arch, sd3_medium_transformer_config)

__all__ = ["check_model", "check_task", "make_classification_dataset", "make_winoground_dataset", "winoground_rows",
           "write_dataset", "TinyOpenCLIP", "make_clip_tokenizer", "make_tiny_openclip", "make_tiny_sd_pipeline",
           "register_tiny_openclip_arch", "make_tiny_sd3_pipeline", "make_tiny_flux_pipeline", "make_tiny_dit_pipeline",
           "sd3_medium_transformer_config", "dit_xl_2_config"]
