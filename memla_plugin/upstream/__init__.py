"""MEMLA as an EasyEdit pull request: generated from the plugin, checked against the host.

* :func:`export_patch` / :func:`export_inplace`: write MEMLA into an EasyEdit checkout the way
  EasyEdit lays out its methods (see :mod:`.export`), as a git patch or in place;
* :func:`host_fix_patches`: one small patch per host defect the project works around
  (see :mod:`.host_fixes`);
* :mod:`.isolated`: run checks in a fresh interpreter against an EasyEdit copy, with
  ``memla_plugin`` not importable.

Command line: ``python -m memla_plugin.upstream export|host-fixes ...`` (``--help``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence

from .export import ExportResult, build_export, commit_message, write_export
from .gitpatch import Change, checkout_commit, make_patches
from .host_fixes import FIXES, HostFix, apply_fix, get_fixes

__all__ = [
    "export_patch", "export_inplace", "host_fix_patches", "PINNED_COMMIT",
    "build_export", "ExportResult", "FIXES", "HostFix",
]


#: the EasyEdit commit the project pins (same value as memla_plugin.setup_env.EASYEDIT_COMMIT)
PINNED_COMMIT = "14cea8245f06715684592ab55184939b99d70784"


def _base_commit(root: Path) -> Optional[str]:
    base = checkout_commit(root)
    if base != PINNED_COMMIT:
        warnings.warn(
            f"{root} is at {base or 'an unknown commit'}, not the pinned EasyEdit commit {PINNED_COMMIT}; "
            f"the patch is made against the checkout as it is",
            stacklevel=3,
        )
    return base


def export_patch(easyedit_root: Path, hparams_dir: Optional[Path] = None) -> tuple[str, ExportResult]:
    """The MEMLA export as one ``git format-patch`` text against ``easyedit_root`` (left untouched)."""
    root = Path(easyedit_root).resolve()
    result = build_export(root, hparams_dir)
    existing = [p for p in result.paths if (root / p).exists()]
    added_but_present = [p for p in existing if p not in ("easyeditor/models/__init__.py", "easyeditor/util/alg_dict.py")]
    if added_but_present:
        raise FileExistsError(
            f"{root} already contains MEMLA files ({', '.join(added_but_present[:3])}, ...); "
            f"make the patch from a checkout without them"
        )
    base = _base_commit(root)
    change = Change("memla", commit_message(base), lambda work: write_export(work, result))
    (patch,) = make_patches(root, existing, [change])
    return patch, result


def export_inplace(easyedit_root: Path, hparams_dir: Optional[Path] = None) -> tuple[list[str], ExportResult]:
    """Write the MEMLA export into the checkout itself; returns the changed paths (idempotent)."""
    root = Path(easyedit_root).resolve()
    result = build_export(root, hparams_dir)
    return write_export(root, result), result


def host_fix_patches(easyedit_root: Path, names: Optional[Sequence[str]] = None) -> dict[str, str]:
    """``{fix name: format-patch text}``, each made independently against ``easyedit_root``."""
    root = Path(easyedit_root).resolve()
    _base_commit(root)
    out = {}
    for fix in get_fixes(names):
        if _state(root, fix) == "applied":
            raise FileExistsError(f"{root} already has the host fix {fix.name!r}; use a checkout without it")
        change = Change(fix.name, fix.message, lambda work, fix=fix: apply_fix(work, fix))
        (out[fix.name],) = make_patches(root, fix.paths, [change])
    return out


def _state(root: Path, fix: HostFix) -> str:
    from .host_fixes import fix_state

    return fix_state(root, fix)
