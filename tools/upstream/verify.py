"""Apply the series with ``git am`` to a copy of the EasyEdit checkout and check each pull request.

Every check runs in a fresh interpreter where ``memla_plugin`` cannot be imported
(:mod:`.isolated`), on a worktree at the commit of the pull request it checks:

* host-fixes: ``checks/host_defects.py`` on the pristine copy (every defect shows) and at the
  host-fixes commit (every defect is gone);
* core: ``checks/memla_core.py``: two facts edited through ``BaseEditor`` get different neurons;
  a request without neurons fails alone;
* speed: the fast-equals-reference test the speed pull request adds, and ``memla_core.py`` again,
  now with the neuron cache on (two facts without case ids do not share a cache entry);
* mkeb: ``checks/mkeb_example.py`` runs the converter and the example on a tiny model, then
  :mod:`.plugin_scores` (with the plugin) scores the same record and compares.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from . import isolated
from .gitpatch import git
from .host_fixes import FIX_NAMES


def git_am(root: Path, patches: Sequence[str], workdir: Path) -> list[tuple[str, str]]:
    """Make ``root`` a git repository at its current state and ``git am`` the patches.

    Returns ``(commit, "author|subject")`` of each applied patch, in order.
    """
    git(root, "init", "-q")
    git(root, "add", "-A", "-f")
    git(root, "commit", "-q", "-m", "pinned EasyEdit")
    for i, text in enumerate(patches, 1):
        path = Path(workdir) / f"{i:04d}.patch"
        path.write_text(text, encoding="utf-8")
        git(root, "am", "-q", str(path))
    log = git(root, "log", "--format=%H|%an <%ae>|%s", f"-{len(patches)}")
    return [tuple(line.split("|", 1)) for line in reversed(log.splitlines())]


def _worktree(repo: Path, commit: str, where: Path) -> Path:
    git(repo, "worktree", "add", "-q", "--detach", str(where), commit)
    return where


def _short(res: dict, keys: Sequence[str]) -> str:
    return json.dumps({k: res.get(k) for k in keys}, ensure_ascii=False, default=str)[:600]


def verify_series(easyedit_root: Path, patches: Sequence[tuple[str, str]], workdir: Path,
                  timeout: float = 900) -> dict:
    """``patches``: ``[(pull request name, patch text)]`` in order. Returns report lines and problems."""
    workdir = Path(workdir)
    pristine = isolated.copy_easyedit(easyedit_root, workdir / "pristine" / "EasyEdit")
    repo = isolated.copy_easyedit(easyedit_root, workdir / "series" / "EasyEdit")
    commits = git_am(repo, [t for _, t in patches], workdir)
    at = {name: _worktree(repo, sha, workdir / f"at-{name}") for (name, _), (sha, _) in zip(patches, commits)}
    report = [f"git am {name}: {who}" for (name, _), (_, who) in zip(patches, commits)]
    problems: list[str] = []

    if "host-fixes" in at:
        jobs = {"before": isolated.start("host_defects.py", pristine, workdir / "run-pristine"),
                "after": isolated.start("host_defects.py", at["host-fixes"], workdir / "run-host-fixes")}
        out = {key: isolated.finish(job, timeout) for key, job in jobs.items()}
        for name in FIX_NAMES:
            before, after = out["before"].get(name, {}), out["after"].get(name, {})
            report.append(f"host-fixes {name}: before ok={before.get('ok')}, after ok={after.get('ok')}")
            if before.get("ok", True):
                problems.append(f"host-fixes {name}: the defect did not show on the pristine copy")
            if not after.get("ok", False):
                problems.append(f"host-fixes {name}: still failing after the fix")

    # the edit checks run at the core commit, and again at the speed commit where the neuron cache is
    for pr in ("core", "speed"):
        if pr not in at:
            continue
        res = isolated.run("memla_core.py", at[pr], workdir / f"run-{pr}-edit", timeout=timeout, check=False)
        for name in ("two-facts-different-neurons", "failed-request-alone"):
            check = res.get(name, {})
            keys = (["neuron_cache", "attributed_prompts", "neurons_en_fact1", "neurons_en_fact2",
                     "cache_entries_per_file", "attributions_when_fact1_edited_again"]
                    if name.startswith("two") else ["logged", "edits"])
            report.append(f"{pr} {name}: ok={check.get('ok')} {_short(check, keys)}")
            if not check.get("ok"):
                problems.append(f"{pr} {name} failed: {check.get('error') or _short(check, keys)}")
        if res.get("memla_plugin_importable"):
            problems.append(f"{pr}: memla_plugin was importable in the isolated interpreter")

    if "speed" in at:
        test = at["speed"] / "tests" / "test_memla_fast_attribution.py"
        res = isolated.run("run_upstream_test.py", at["speed"], workdir / "run-speed", args=[str(test)],
                           timeout=timeout, check=False)
        report.append(f"speed fast == reference: {res.get('passed')} passed, {res.get('failed')} failed "
                      f"({res['_seconds']} s)")
        if res.get("failed") or not res.get("passed"):
            problems.append(f"speed test failed: {res.get('errors')}")

    if "mkeb" in at:
        run_dir = workdir / "run-mkeb"
        res = isolated.run("mkeb_example.py", at["mkeb"], run_dir, timeout=timeout, check=False)
        report.append(f"mkeb example: ok={res.get('ok')} "
                      f"{_short(res, ['converted_records', 'example_records', 'edited_params', 'post_en'])}")
        if not res.get("ok"):
            problems.append(f"mkeb example failed: {res.get('converter_tail') or res.get('_stderr_tail', '')[-800:]}")
        else:
            mine = _plugin_scores(run_dir, timeout)
            report.append(f"mkeb scores equal the plugin's: ok={mine.get('ok')} "
                          f"{_short(mine, ['same_converted_records', 'n_metrics_compared', 'differences'])}")
            if not mine.get("ok"):
                problems.append(f"mkeb scores differ from the plugin's: {_short(mine, ['differences', 'error'])}")
    return {"report": report, "problems": problems, "commits": commits}


def _plugin_scores(run_dir: Path, timeout: float) -> dict:
    """:mod:`.plugin_scores` in a subprocess of this interpreter (the plugin importable)."""
    script = Path(__file__).resolve().with_name("plugin_scores.py")
    proc = subprocess.run([sys.executable, str(script), str(run_dir)], capture_output=True, text=True,
                          timeout=timeout, env=isolated.env())
    lines = [l for l in proc.stdout.splitlines() if l.startswith(isolated.MARK)]
    if not lines:
        return {"ok": False, "error": (proc.stdout + proc.stderr)[-1500:]}
    return json.loads(lines[-1][len(isolated.MARK):])
