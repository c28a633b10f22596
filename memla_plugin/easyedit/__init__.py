"""MEMLA inside EasyEdit: the one place for code that knows the EasyEdit host.

Nothing here imports ``easyeditor`` at import time (it takes ~10 s and seeds RNGs); every
entry point imports it when called and raises
:class:`memla_plugin.errors.EasyEditNotFoundError` when it is missing.

* :func:`register` - MEMLA in ``ALG_DICT``, MKEB in ``DS_DICT``, ``model_name: default`` and other
  names EasyEdit does not dispatch, MEMLA's extra request keys through ``edit()``, host fixes.
* :func:`load_hparams` / :func:`get_apply_fn` - method name -> hparams class / apply function.
* :func:`prepare_baseline` - statistics for ROME/MEMIT, a trained hypernetwork for MEND.
* :func:`apply_host_fixes` - runtime fixes of host defects (see :mod:`.patches`).
"""
from __future__ import annotations

from .baselines import prepare_baseline
from .hparams_map import get_apply_fn, load_hparams
from .patches import apply_host_fixes
from .registry import register

__all__ = ["register", "get_apply_fn", "load_hparams", "prepare_baseline", "apply_host_fixes"]
