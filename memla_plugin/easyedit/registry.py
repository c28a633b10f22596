"""``register()``: make MEMLA a method of the EasyEdit host.

EasyEdit has no plugin mechanism; its editors look methods up in the module-level dict
``ALG_DICT`` and batch editing is gated by the ``BatchEditor`` enum. Registering therefore
mutates those host objects (plus the small wrappers of :mod:`.loader` and :mod:`.requests`
and the host fixes of :mod:`.patches`), once per process. The host's own editors in
``ALG_DICT`` are wrapped by :func:`.targets.with_scored_targets`, so a request that says its
``edit_lang`` is edited on the target ids the MKEB scorer scores.

MEMLA is added to batch editing (``BatchEditor.is_batchable_method`` answers yes for it):
``BaseEditor.batch_edit`` hands each chunk of ``hparams.batch_size`` requests to
``apply_memla_to_model`` in one call, which edits them jointly under ``batch_mode: joint``
(:mod:`memla_plugin.batch`: one training, one merge) and one after the other under the default
``batch_mode: sequential``.
"""
from __future__ import annotations

import logging

from . import loader, requests
from .host import host_module, import_easyeditor
from .patches import apply_host_fixes
from .targets import with_scored_targets

LOG = logging.getLogger(__name__)

ALG_NAME = "MEMLA"
DATASET_NAME = "mkeb"
MEMLA_SUPPORTS_BATCH = True

_STATE = {"registered": False}


def _memla_apply_fn():
    from ..memla_main import apply_memla_to_model

    return apply_memla_to_model


def _mkeb_dataset_cls():
    try:
        from ..mkeb import MKEBDataset
    except ImportError:
        return None
    return MKEBDataset


def register() -> None:
    """Register MEMLA (and the MKEB dataset) in EasyEdit; idempotent.

    Raises :class:`memla_plugin.errors.EasyEditNotFoundError` when ``easyeditor`` is not
    importable.
    """
    import_easyeditor()
    apply_host_fixes()
    from easyeditor.util.alg_dict import ALG_DICT, DS_DICT  # module attribute access fails at 14cea82

    apply_fn = _memla_apply_fn()
    if ALG_DICT.get(ALG_NAME) is not apply_fn:
        ALG_DICT[ALG_NAME] = apply_fn
    for name, fn in list(ALG_DICT.items()):  # the host's editors edit on the scored target form
        if name != ALG_NAME:
            ALG_DICT[name] = with_scored_targets(fn)
    dataset_cls = _mkeb_dataset_cls()
    if dataset_cls is not None and DS_DICT.get(DATASET_NAME) is not dataset_cls:
        DS_DICT[DATASET_NAME] = dataset_cls
    _allow_batch_edit()
    editor_module = host_module("easyeditor.editors.editor")
    loader.install(editor_module)
    requests.install(editor_module)
    if not _STATE["registered"]:
        _STATE["registered"] = True
        LOG.info(
            "memla_plugin registered %s in EasyEdit (ALG_DICT%s; batch editing: %s)",
            ALG_NAME,
            f", DS_DICT[{DATASET_NAME!r}]" if dataset_cls is not None else "",
            "yes (batch_mode: joint edits a chunk at once)" if MEMLA_SUPPORTS_BATCH else "no",
        )


def _allow_batch_edit() -> None:
    """Make ``BatchEditor.is_batchable_method("MEMLA")`` true, the host's own answers unchanged (idempotent)."""
    from easyeditor.editors.batch_editor import BatchEditor

    original = BatchEditor.is_batchable_method
    if not MEMLA_SUPPORTS_BATCH or getattr(original, "__memla__", False):
        return

    def is_batchable_method(alg_name: str) -> bool:
        return alg_name == ALG_NAME or original(alg_name)

    is_batchable_method.__memla__ = True  # type: ignore[attr-defined]
    BatchEditor.is_batchable_method = staticmethod(is_batchable_method)


def is_registered() -> bool:
    """True once :func:`register` has run in this process."""
    return _STATE["registered"]
