"""Model names EasyEdit's ``BaseEditor`` does not dispatch.

``BaseEditor.__init__`` picks a loader by substring of ``hparams.model_name`` (gpt, llama,
qwen2, ...) and raises NotImplementedError for anything else; its alternative, passing a
``(model, tok)`` tuple as ``model_name``, leaves ``self.model_name`` a tuple and crashes the
evaluation (``model_name.lower()``). The wrapper installed here

* resolves the alias ``"default"`` to the converted default model directory (whose name
  contains ``Qwen2.5``, so EasyEdit loads it with its own Qwen2 branch);
* loads any other name EasyEdit rejects with :func:`memla_plugin.models.load_model` and hands
  it over through the tuple path, then sets ``model_name`` back to the string;
* gives a string ``model_name`` (the model's ``_name_or_path``) to editors built from a
  ``(model, tok)`` tuple, in the editor and in its hparams.
"""
from __future__ import annotations

import functools
import logging

LOG = logging.getLogger(__name__)

DEFAULT_ALIASES = ("default",)
_MARK = "__memla_model_names__"
# EasyEdit (editor.py) pads on the right for these locate-then-edit methods, on the left otherwise
_RIGHT_PADDED_ALGS = ("ROME", "MEMIT", "EMMET", "EAMET", "R-ROME", "AlphaEdit", "CORE", "SPHERE")


def resolve_model_name(name: str) -> str:
    """Map the alias ``"default"`` to the default model's directory; other names pass through."""
    if name in DEFAULT_ALIASES:
        from ..models import default_model_dir

        return str(default_model_dir())
    return name


def _name_of(model) -> str:
    return str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)


def _set_padding(tok, alg_name: str) -> None:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right" if alg_name in _RIGHT_PADDED_ALGS else "left"


def _init_with_own_loader(editor, hparams, original_init, name: str) -> None:
    from ..models import load_model

    dtype = "float16" if getattr(hparams, "fp16", False) else "float32"
    LOG.info("EasyEdit does not dispatch model_name %r; loading it with memla_plugin.models.load_model", name)
    model, tok = load_model(name, device="cpu", dtype=dtype)
    _set_padding(tok, hparams.alg_name)
    hparams.model_name = (model, tok)
    try:
        original_init(editor, hparams)
    finally:
        hparams.model_name = name
    editor.model_name = name


def with_model_names(original_init):
    """Wrap ``BaseEditor.__init__`` (see module docstring)."""
    if getattr(original_init, _MARK, False):
        return original_init

    @functools.wraps(original_init)
    def __init__(self, hparams):
        name = getattr(hparams, "model_name", None)
        if isinstance(name, tuple):
            original_init(self, hparams)
            self.model_name = hparams.model_name = _name_of(self.model)
            return
        if not isinstance(name, str):
            return original_init(self, hparams)
        resolved = resolve_model_name(name)
        if resolved != name:
            LOG.info("model_name %r resolved to %s", name, resolved)
            hparams.model_name = resolved
        try:
            original_init(self, hparams)
        except NotImplementedError:
            if getattr(self, "model", None) is not None:
                raise
            _init_with_own_loader(self, hparams, original_init, resolved)

    setattr(__init__, _MARK, True)
    return __init__


def install(editor_module) -> bool:
    """Wrap ``BaseEditor.__init__`` in EasyEdit's editor module; False if already done."""
    cls = editor_module.BaseEditor
    if getattr(cls.__init__, _MARK, False):
        return False
    cls.__init__ = with_model_names(cls.__init__)
    return True
