"""Runtime fixes for defects of the pinned EasyEdit host (commit 14cea82) that the baselines hit.

Each fix is the smallest change that makes the host behave as its authors intended, applied
at run time (never by editing the checkout), idempotent, and logged once:

* ``generate_fast`` (``easyeditor/util/generate.py``) passes ``attention_mask[:, cur_context]``
  together with the KV cache. Under transformers 5.x the mask must cover the cached positions
  too, so every generated token attends to nothing before it and ROME/MEMIT's context
  templates come out as garbage. The fix recompiles the host's own function with
  ``attention_mask[:, :cur_context.stop]`` (the one-token change proposed upstream) and rebinds
  it wherever the host imported it by name.
* ``layer_stats(..., progress=None)`` calls ``None``'s replacement with ``total=`` and raises
  TypeError; the wrapper maps ``progress=None`` to a pass-through that accepts it.
* LoRA's ``execute_lora`` joins prompt and target as ``f"{p} {l}"``; it becomes
  ``p + (" " + l)``, the same text for plain strings, so that the scored target form of
  :mod:`.targets` reaches LoRA as it reaches the other editors.
* ``BaseTrainer.run`` reloads the checkpoint it has just written with ``torch.load`` defaults;
  torch >= 2.6 defaults to ``weights_only=True`` and refuses it. The wrapper lets exactly the
  pickled types of that checkpoint through (``torch.serialization.safe_globals``) while the
  trainer runs.
* ``mend_main`` loads a MEND archive with ``torch.load(weights_only=False)``, which runs whatever
  the file pickles; the plugin hands it user-given and cached files. The fix gives that module a
  ``torch`` whose ``load`` always uses ``weights_only=True`` with the same allowlist.
"""
from __future__ import annotations

import ast
import functools
import inspect
import logging
import textwrap
from typing import Callable

from ..errors import MEMLAError
from .host import host_module, host_modules, import_easyeditor

LOG = logging.getLogger(__name__)

_BUGGY_MASK = "attention_mask[:, cur_context]"
_FIXED_MASK = "attention_mask[:, :cur_context.stop]"
_MARK = "__memla_host_fix__"

# what apply_host_fixes() did in this process: fix name -> one-line description
APPLIED: dict[str, str] = {}


class HostPatchError(MEMLAError):
    """A host fix could not be applied because the EasyEdit source is not the expected one."""


def _rebind(old: Callable, new: Callable, attr: str) -> list[str]:
    """Replace ``old`` by ``new`` in every loaded host module that bound it as ``attr``."""
    rebound = []
    for mod in host_modules():
        if getattr(mod, attr, None) is old:
            setattr(mod, attr, new)
            rebound.append(mod.__name__)
    return rebound


def recompiled(original: Callable, old: str, new: str, where: str, mark: str) -> Callable:
    """The host function ``original`` recompiled from its source with ``old`` replaced by ``new``.

    ``old`` must occur exactly once (else the host is not the pinned one and the fix may be
    wrong); the result runs against the host module's globals and keeps its line numbers.
    """
    source = textwrap.dedent(inspect.getsource(original))
    if source.count(old) != 1:
        raise HostPatchError(
            f"{where} does not contain {old!r} exactly once; this EasyEdit version is not the pinned one, "
            f"check whether the fix ({mark}) is still needed"
        )
    tree = ast.parse(source.replace(old, new))
    ast.increment_lineno(tree, original.__code__.co_firstlineno - 1)  # tracebacks point into the host file
    code = compile(tree, inspect.getsourcefile(original) or f"<{where}>", "exec")
    namespace: dict = {}
    exec(code, original.__globals__, namespace)  # defines the function against the host module's globals
    fixed = namespace[original.__name__]
    fixed.__doc__ = original.__doc__
    fixed.__wrapped__ = original
    setattr(fixed, _MARK, mark)
    return fixed


def fixed_generate_fast(original: Callable) -> Callable:
    """Recompile the host's ``generate_fast`` with the KV-cache attention mask covering the cache."""
    return recompiled(original, _BUGGY_MASK, _FIXED_MASK, "easyeditor.util.generate.generate_fast",
                      "generate_fast KV-cache attention mask")


_LORA_JOIN = 'f"{p} {l}"'
_LORA_JOIN_FIXED = 'p + (" " + l)'


def _fix_lora_target_join() -> str | None:
    """LoRA joins prompt and target in an f-string, which no target type can take part in.

    ``p + (" " + l)`` is the same text for plain strings; a
    :class:`memla_plugin.easyedit.targets.ScoredTarget` turns the space into its scored form,
    as it does in ROME, MEMIT, FT and MEND, which build their text with ``+``.
    """
    try:
        mod = host_module("easyeditor.models.lora.lora_main")
    except ImportError:
        return None
    current = mod.execute_lora
    if getattr(current, _MARK, None):
        return None
    mod.execute_lora = recompiled(current, _LORA_JOIN, _LORA_JOIN_FIXED, "easyeditor.models.lora.lora_main.execute_lora",
                                  "LoRA prompt/target join")
    return "execute_lora: prompt and target joined with + (the scored target form applies, as in the other editors)"


def _fix_generate_fast() -> str | None:
    gen = host_module("easyeditor.util.generate")
    current = gen.generate_fast
    if getattr(current, _MARK, None):
        return None
    if _BUGGY_MASK not in inspect.getsource(current) and _FIXED_MASK in inspect.getsource(current):
        return None  # fixed upstream
    fixed = fixed_generate_fast(current)
    modules = _rebind(current, fixed, "generate_fast")
    reset_context_template_caches()  # templates generated before the fix are garbage
    return f"generate_fast: attention_mask[:, :cur_context.stop] under the KV cache (rebound in {len(modules)} modules)"


def _accepting_no_progress(original: Callable, default_progress: Callable) -> Callable:
    @functools.wraps(original)
    def layer_stats(*args, progress=default_progress, **kwargs):
        return original(*args, progress=_no_progress if progress is None else progress, **kwargs)

    setattr(layer_stats, _MARK, "layer_stats progress=None")
    return layer_stats


def _fix_layer_stats_progress() -> str | None:
    done = []
    for mod_name in ("easyeditor.models.rome.layer_stats", "easyeditor.models.r_rome.layer_stats"):
        try:
            mod = host_module(mod_name)
        except ImportError:
            continue
        original = mod.layer_stats
        if getattr(original, _MARK, None):
            continue
        _rebind(original, _accepting_no_progress(original, mod.tqdm), "layer_stats")
        done.append(mod_name)
    return "layer_stats: progress=None accepted" if done else None


def _no_progress(iterable, **_kwargs):
    return iterable


def trainer_checkpoint_globals(model_config=None) -> list:
    """Types pickled in a checkpoint written by EasyEdit's ``BaseTrainer.save_state``.

    The MEND state dict carries the edited model's config object (``model_config``) and
    ``val_stats`` may hold numpy scalars; the rest is tensors, dicts, strings and numbers.
    """
    from .checkpoints import checkpoint_globals

    return checkpoint_globals(model_config)


class _WeightsOnlyTorch:
    """``torch`` as EasyEdit's ``mend_main`` sees it: every attribute is torch's, except that
    ``load`` always runs with ``weights_only=True`` and the trainer checkpoint's allowlist."""

    def __init__(self, torch_module) -> None:
        self._torch = torch_module

    def __getattr__(self, name: str):
        return getattr(self._torch, name)

    @staticmethod
    def load(f, *args, **kwargs):
        from .checkpoints import safe_load

        kwargs.pop("weights_only", None)
        return safe_load(f, *args, **kwargs)


def _fix_mend_load() -> str | None:
    try:
        mod = host_module("easyeditor.models.mend.mend_main")
    except ImportError:
        return None
    if isinstance(getattr(mod, "torch", None), _WeightsOnlyTorch):
        return None
    mod.torch = _WeightsOnlyTorch(mod.torch)
    return "mend_main: MEND archives loaded with weights_only=True (the trainer checkpoint's types allowed)"


def _fix_trainer_reload() -> str | None:
    base = host_module("easyeditor.trainer.BaseTrainer")
    cls = base.BaseTrainer
    if getattr(cls.run, _MARK, None):
        return None
    original = cls.run

    @functools.wraps(original)
    def run(self, *args, **kwargs):
        import torch

        inner = getattr(getattr(self, "model", None), "model", None)
        with torch.serialization.safe_globals(trainer_checkpoint_globals(getattr(inner, "config", None))):
            return original(self, *args, **kwargs)

    setattr(run, _MARK, "BaseTrainer.run checkpoint reload under weights_only")
    cls.run = run
    return "BaseTrainer.run: reload of its own checkpoint allowed under torch>=2.6 weights_only"


def reset_context_template_caches() -> None:
    """Forget context templates / covariance caches the host keeps per process (they are model-specific)."""
    for mod in host_modules():
        if getattr(mod, "CONTEXT_TEMPLATES_CACHE", None) is not None:
            mod.CONTEXT_TEMPLATES_CACHE = None
        for cache_name in ("inv_mom2_cache", "COV_CACHE"):
            cache = getattr(mod, cache_name, None)
            if isinstance(cache, dict):
                cache.clear()


def context_template_caches() -> dict[str, list]:
    """The context templates host modules (ROME, MEMIT, ...) generated in this process, by module name."""
    return {mod.__name__: mod.CONTEXT_TEMPLATES_CACHE for mod in host_modules()
            if getattr(mod, "CONTEXT_TEMPLATES_CACHE", None) is not None}


def restore_context_template_caches(saved: dict[str, list]) -> None:
    """Give host modules the templates :func:`context_template_caches` read in another process."""
    for name, templates in saved.items():
        host_module(name).CONTEXT_TEMPLATES_CACHE = templates


def apply_host_fixes() -> dict[str, str]:
    """Apply every host fix once per process; log each the first time. Returns what is applied."""
    import_easyeditor()
    for name, fix in (
        ("generate_fast", _fix_generate_fast),
        ("layer_stats", _fix_layer_stats_progress),
        ("trainer_reload", _fix_trainer_reload),
        ("mend_load", _fix_mend_load),
        ("lora_target_join", _fix_lora_target_join),
    ):
        if name in APPLIED:
            continue
        message = fix()
        if message is not None:
            APPLIED[name] = message
            LOG.info("memla_plugin applied EasyEdit host fix: %s", message)
    return dict(APPLIED)
