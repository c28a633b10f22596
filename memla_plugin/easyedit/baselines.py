"""``prepare_baseline``: what EasyEdit's own methods need before their first edit.

* ROME (with ``mom2_adjustment``) and MEMIT: second-moment statistics of the edited layers,
  computed locally (:mod:`.stats`) instead of EasyEdit's Wikipedia download.
* MEND: a hypernetwork trained with EasyEdit's trainer (:mod:`.mend`).
* every method: the host's per-process caches (context templates, inverse covariances, the
  MEND executor's model) are model-specific and are reset.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any

from .hparams_map import canonical_alg

LOG = logging.getLogger(__name__)


def _reset_mend_executor() -> None:
    from easyeditor.util.alg_dict import ALG_DICT

    apply_fn = ALG_DICT.get("MEND")
    executor = getattr(inspect.unwrap(apply_fn), "__self__", None) if apply_fn is not None else None
    if executor is not None and getattr(executor, "is_init", False):
        executor.reset_model()


def prepare_baseline(alg_name: str, model, tok, hparams, **kwargs: Any):
    """Make ``hparams`` runnable on ``model`` offline; returns ``hparams`` (updated in place).

    ``kwargs`` go to the preparation step (``texts``/``corpus_info``/``stats_dir`` for the
    statistics, ``train_items``/``steps``/``out_dir`` for MEND).
    """
    from .patches import reset_context_template_caches
    from .registry import register

    register()
    alg = canonical_alg(alg_name)
    reset_context_template_caches()
    if alg == "MEMIT" or (alg == "ROME" and getattr(hparams, "mom2_adjustment", False)):
        from .stats import ensure_mom2_stats

        ensure_mom2_stats(model, tok, hparams, **kwargs)
    elif alg == "MEND":
        from .mend import ensure_mend_checkpoint

        _reset_mend_executor()
        ensure_mend_checkpoint(model, tok, hparams, **kwargs)
    return hparams
