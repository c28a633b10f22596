"""Git patches of changes to an EasyEdit checkout, made in a scratch copy.

The checkout itself is never touched: the files a change modifies are copied to a temporary
directory, committed there as the baseline (the shared checkout may not be a git repository at
all), the change is written and committed, and ``git format-patch`` prints it. Identity and
dates are fixed, so the same input gives byte-identical patches. A patch made this way applies
with ``git am`` (keeping the message) or ``git apply`` to a clone at the same commit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from ..errors import MEMLAError

AUTHOR = ("memla-plugin", "memla-plugin@users.noreply.github.com")
FIXED_DATE = "2025-01-01T00:00:00+00:00"


class GitError(MEMLAError):
    """A git command needed to build or apply a patch failed (the message has git's output)."""


def git_env(extra: Optional[dict] = None) -> dict:
    """Environment for reproducible git runs, independent of the user's git configuration."""
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1], GIT_AUTHOR_DATE=FIXED_DATE,
        GIT_COMMITTER_NAME=AUTHOR[0], GIT_COMMITTER_EMAIL=AUTHOR[1], GIT_COMMITTER_DATE=FIXED_DATE,
        GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    if extra:
        env.update(extra)
    return env


def git(cwd: Path, *args: str, input: Optional[str] = None, ceiling: bool = True) -> str:
    """Run git in ``cwd``; never let it walk up into an enclosing repository."""
    env = git_env({"GIT_CEILING_DIRECTORIES": str(Path(cwd).resolve().parent)} if ceiling else None)
    try:
        proc = _run_git(cwd, env, input, args)
    except FileNotFoundError:
        raise GitError("git is not installed; making and applying patches needs it") from None
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def _run_git(cwd: Path, env: dict, input: Optional[str], args: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false",
         "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, env=env, input=input, capture_output=True, text=True,
    )


def checkout_commit(root: Path) -> Optional[str]:
    """The commit an EasyEdit checkout is at: its git HEAD, else the first word of a ``COMMIT`` file."""
    root = Path(root)
    if (root / ".git").exists():
        try:
            return git(root, "rev-parse", "HEAD", ceiling=False).strip()
        except GitError:
            pass
    marker = root / "COMMIT"
    if marker.is_file():
        words = marker.read_text(encoding="utf-8").split()
        if words:
            return words[0]
    return None


@dataclass
class Change:
    """One commit of a patch series: a message and a function that writes the change into a root."""

    name: str
    message: str
    write: Callable[[Path], Sequence[str]]  # returns the paths (relative, posix) it wrote or deleted


def make_patches(source_root: Path, baseline_files: Iterable[str], changes: Sequence[Change]) -> list[str]:
    """One ``git format-patch`` text per change, each on top of the previous ones.

    ``baseline_files`` are the existing files of ``source_root`` the changes modify; they are
    copied as the baseline. Changes that write nothing raise, so an empty patch is never emitted.
    """
    source_root = Path(source_root)
    with tempfile.TemporaryDirectory(prefix="memla-upstream-") as tmp:
        work = Path(tmp) / "easyedit"
        work.mkdir()
        for rel in sorted(set(baseline_files)):
            src = source_root / rel
            if not src.is_file():
                raise GitError(f"{src} does not exist: is {source_root} an EasyEdit checkout?")
            dst = work / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        git(work, "init", "-q")
        git(work, "add", "-A", "-f")
        git(work, "commit", "-q", "--allow-empty", "-m", "baseline")
        patches = []
        for change in changes:
            written = list(change.write(work))
            if not written:
                raise GitError(f"change {change.name!r} wrote nothing")
            git(work, "add", "-A", "-f", "--", *written)
            if not git(work, "status", "--porcelain"):
                raise GitError(f"change {change.name!r} left the files as they were")
            git(work, "commit", "-q", "-F", "-", input=change.message)
            patches.append(git(work, "format-patch", "-1", "--stdout", "--no-signature", "--no-numbered", "HEAD"))
        return patches


def patch_files(patch_text: str) -> dict[str, str]:
    """``{path: status}`` of a patch ("A" added, "M" modified, "D" deleted) from its ``diff --git`` headers."""
    out: dict[str, str] = {}
    current = None
    for line in patch_text.splitlines():
        if line.startswith("diff --git a/"):
            current = line.split(" b/", 1)[1]
            out[current] = "M"
        elif current and line.startswith("new file mode"):
            out[current] = "A"
        elif current and line.startswith("deleted file mode"):
            out[current] = "D"
    return out


def apply_patch(root: Path, patch: Path, check: bool = False) -> None:
    """``git apply`` a patch file to ``root`` (a plain directory or a git work tree)."""
    args = ["apply", "--whitespace=nowarn"] + (["--check"] if check else []) + [str(Path(patch).resolve())]
    git(Path(root), *args)


def diffstat(patch: Path, cwd: Optional[Path] = None) -> str:
    """``git apply --stat`` of a patch file (needs no checkout)."""
    where = Path(cwd) if cwd else Path(patch).resolve().parent
    return git(where, "apply", "--stat", str(Path(patch).resolve()))
