"""Git patches of changes to an EasyEdit checkout, made in a scratch copy.

The checkout itself is never touched: the files a series modifies are copied to a temporary
directory, committed there as the baseline (the checkout may not be a git repository at all),
each change is written and committed on top of the previous one, and ``git format-patch``
prints them. The author is the person exporting (``--author`` or their git configuration),
dated now. A series made this way applies with ``git am`` to a clone at the same commit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import re


class GitError(Exception):
    """A git command needed to build or apply a patch failed (the message has git's output)."""


#: the identity commits are made with; set by :func:`set_author`
_AUTHOR: Optional[tuple[str, str]] = None


def parse_author(value: str) -> tuple[str, str]:
    """``"Name <email>"`` -> (name, email); raises naming the flag when it is malformed."""
    m = re.fullmatch(r"\s*(.+?)\s*<([^<>@\s]+@[^<>\s]+)>\s*", value or "")
    if not m:
        raise GitError(f"--author {value!r} is not of the form 'Name <email>'")
    return m.group(1), m.group(2)


def configured_author(cwd: Optional[Path] = None) -> tuple[str, str]:
    """``user.name`` / ``user.email`` from the exporting user's git configuration."""
    values = []
    for key in ("user.name", "user.email"):
        proc = subprocess.run(["git", "config", "--get", key], cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise GitError(f"git config {key} is not set; set it or pass --author 'Name <email>'")
        values.append(proc.stdout.strip())
    return values[0], values[1]


def set_author(author: Optional[tuple[str, str]]) -> None:
    global _AUTHOR
    _AUTHOR = author


def git_env(extra: Optional[dict] = None) -> dict:
    """Environment for git runs in scratch repositories (the user's global config is not read)."""
    env = dict(os.environ)
    name, email = _AUTHOR or configured_author()
    env.update(
        GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email,
        GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C",
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
    Patches are numbered ``[PATCH i/n]`` as ``git format-patch`` numbers a series.
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
        for i, change in enumerate(changes, 1):
            written = list(change.write(work))
            if not written:
                raise GitError(f"change {change.name!r} wrote nothing")
            git(work, "add", "-A", "-f", "--", *written)
            if not git(work, "status", "--porcelain"):
                raise GitError(f"change {change.name!r} left the files as they were")
            git(work, "commit", "-q", "-F", "-", input=change.message)
            patches.append(git(work, "format-patch", "-1", "--stdout", "--no-signature",
                               f"--start-number={i}", f"--subject-prefix=PATCH {i}/{len(changes)}", "HEAD"))
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
