"""``register()``: make MEMLA a method of the EasyEdit host.

EasyEdit has no plugin mechanism; its editors look methods up in the module-level dict
``ALG_DICT`` and batch editing is gated by the ``BatchEditor`` enum. Registering therefore
mutates those host objects (plus the small wrappers of :mod:`.loader` and :mod:`.requests`
and the host fixes of :mod:`.patches`), once per process. The host's own editors in
``ALG_DICT`` are wrapped by :func:`.targets.with_scored_targets`, so a request that says its
``edit_lang`` is edited on the target ids the MKEB scorer scores.

MEMLA is *not* added to batch editing: ``apply_memla_to_model`` edits the requests of a call
one after the other (attribution and a masked-LoRA fit per fact), which is what EasyEdit's
single ``edit()`` loop already does; calling it through ``batch_edit`` would only pretend to
batch. ``BaseEditor.batch_edit`` therefore refuses MEMLA as it refuses ROME.
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
MEMLA_SUPPORTS_BATCH = False

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
    editor_module = host_module("easyeditor.editors.editor")
    loader.install(editor_module)
    requests.install(editor_module)
    if not _STATE["registered"]:
        _STATE["registered"] = True
        LOG.info(
            "memla_plugin registered %s in EasyEdit (ALG_DICT%s; batch editing: %s)",
            ALG_NAME,
            f", DS_DICT[{DATASET_NAME!r}]" if dataset_cls is not None else "",
            "yes" if MEMLA_SUPPORTS_BATCH else "no, MEMLA edits requests sequentially",
        )


def is_registered() -> bool:
    """True once :func:`register` has run in this process."""
    return _STATE["registered"]
