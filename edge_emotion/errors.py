"""Exceptions raised by edge-emotion. Each message says what was wrong and what to do."""

from __future__ import annotations


class EdgeEmotionError(Exception):
    """Base class of every error edge-emotion raises on purpose."""


class ModelError(EdgeEmotionError, ValueError):
    """A model file is missing, damaged, or does not match what it claims to be."""


class BackendUnavailableError(EdgeEmotionError, ImportError):
    """The runtime needed for a model format is not installed or cannot run here (e.g. no GPU)."""


class InputError(EdgeEmotionError, ValueError):
    """A frame or a batch has the wrong type, dtype, shape or is empty."""


class SourceError(EdgeEmotionError, RuntimeError):
    """A camera or video source could not be opened or stopped delivering frames."""
