"""Named exceptions for everything a user can get wrong.

Every error raised on bad input derives from :class:`MEMLAError`, so callers (the
benchmark harness, the CLIs) can turn them into one-line messages instead of tracebacks.
"""
from __future__ import annotations


class MEMLAError(Exception):
    """Base class of every error memla_plugin raises on purpose."""


class HParamsError(MEMLAError, ValueError):
    """A hyperparameter file or value is invalid (unknown key, wrong alg_name, bad value)."""


class UnknownArchitectureError(MEMLAError):
    """The model's module names are not known and the hparams do not override them."""


class EmptyTargetError(MEMLAError, ValueError):
    """A target string tokenises to zero tokens."""


class NoNeuronsError(MEMLAError):
    """Attribution selected no neurons in any language, so there is nothing to edit."""


class NaNLossError(MEMLAError, FloatingPointError):
    """The editing loss became NaN or infinite; the model was left unchanged."""


class MissingLanguageError(MEMLAError, KeyError):
    """A record or request lacks a language the method or metric needs."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataValidationError(MEMLAError, ValueError):
    """An MKEB/BMIKE record is malformed; the message names record id, language and field."""


class DefaultModelError(MEMLAError):
    """The embedded default model could not be assembled or loaded."""


class ChecksumMismatchError(DefaultModelError):
    """The assembled default-model file does not have the expected sha256."""


class EasyEditNotFoundError(MEMLAError, ImportError):
    """EasyEdit (``easyeditor``) is not importable; the message says how to provide it."""


class RestoreMismatchError(MEMLAError):
    """Weights after restoring an edit differ from the originals."""
