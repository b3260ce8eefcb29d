"""Errors shared by the data and weight loaders (a leaf module: it imports nothing from winoeval)."""

from __future__ import annotations


class HubUnavailableError(RuntimeError):
    """Weights or data could not be had from the hub, its local cache or a local folder. The message
    says what to do."""
