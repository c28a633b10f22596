"""Check generated patches against a copy of the EasyEdit checkout, in fresh interpreters.

* :func:`verify_export`: apply the MEMLA patch to a copy, then (with ``memla_plugin`` blocked)
  build ``BaseEditor`` from ``MEMLAHyperParams.from_hparams``, edit a tiny Qwen2 model on CPU and
  run the MKEB example (``checks/memla_smoke.py``).
* :func:`verify_host_fixes`: run ``checks/host_defects.py`` on a pristine copy and on a copy with
  the host-fix patches applied, side by side; each defect must show before and be gone after.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from . import isolated
from .gitpatch import apply_patch
from .host_fixes import FIX_NAMES


def verify_export(easyedit_root: Path, patch: Path, workdir: Path, timeout: float = 900) -> dict:
    """Result dict of ``checks/memla_smoke.py`` on a patched copy; raises when a check fails."""
    workdir = Path(workdir)
    copy = isolated.copy_easyedit(easyedit_root, workdir / "EasyEdit")
    apply_patch(copy, patch)
    return isolated.run("memla_smoke.py", copy, workdir / "smoke", timeout=timeout)


def verify_host_fixes(easyedit_root: Path, patches: Mapping[str, Path], workdir: Path, timeout: float = 900) -> dict:
    """``{"before": probes on a pristine copy, "after": probes with every patch applied, "problems": [...]}``."""
    workdir = Path(workdir)
    pristine = isolated.copy_easyedit(easyedit_root, workdir / "pristine" / "EasyEdit")
    fixed = isolated.copy_easyedit(easyedit_root, workdir / "fixed" / "EasyEdit")
    for name in sorted(patches):
        apply_patch(pristine, patches[name], check=True)  # each applies alone to the pristine tree
        apply_patch(fixed, patches[name])
    jobs = {
        "before": isolated.start("host_defects.py", pristine, workdir / "pristine" / "run"),
        "after": isolated.start("host_defects.py", fixed, workdir / "fixed" / "run"),
    }
    out = {key: isolated.finish(job, timeout) for key, job in jobs.items()}
    problems = []
    for name in patches:
        if name not in FIX_NAMES:
            continue
        if out["before"].get(name, {}).get("ok", True):
            problems.append(f"{name}: the defect did not show on the pristine copy")
        if not out["after"].get(name, {}).get("ok", False):
            problems.append(f"{name}: still failing with the patch: {out['after'].get(name)}")
    out["problems"] = problems
    return out
