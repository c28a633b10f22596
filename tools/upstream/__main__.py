"""``python -m tools.upstream``: the MEMLA contribution to EasyEdit as a series of git patches.

    python -m tools.upstream --easyedit DIR --out-dir patches/ [--upto mkeb] [--author "Name <email>"]
                             [--verify] [--inplace]

Writes ``0001-...patch`` (host fixes), ``0002-...`` (MEMLA core), ``0003-...`` (speed) and
``0004-...`` (MKEB), each one commit for ``git am`` authored by you (git config or ``--author``),
and prints each one's size. The checkout is only read unless ``--inplace`` (which writes the
files, never deletes any). ``--verify`` applies the series with ``git am`` to a scratch copy and
checks each pull request at its own commit in fresh interpreters that cannot import the plugin
(see :mod:`.verify`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from .export import build_series
from .gitpatch import GitError, configured_author, make_patches, parse_author, set_author, Change
from .host_fixes import HostFixError
from .layout import PR_ORDER
from .source import ExportError


def _easyedit_dir(value: Optional[str]) -> Path:
    value = value or os.environ.get("EASYEDIT_PATH")
    if not value:
        raise SystemExit("error: give --easyedit DIR (an EasyEdit checkout) or set EASYEDIT_PATH")
    return Path(value).expanduser().resolve()


def series_patches(root: Path, upto: str = "mkeb") -> list[tuple[str, str, dict]]:
    """``[(pull request name, patch text, {"files": n, "added": n, "removed": n})]`` in order."""
    series = build_series(root, upto)
    baseline = sorted({p for pr in series for p in pr.files if (root / p).is_file()})
    changes = [Change(pr.name, pr.message, lambda work, pr=pr: _write(work, pr.files)) for pr in series]
    texts = make_patches(root, baseline, changes)
    return [(pr.name, text, patch_size(text)) for pr, text in zip(series, texts)]


def _write(work: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def patch_size(text: str) -> dict:
    """Files touched and lines added/removed by one patch."""
    files = sum(1 for l in text.splitlines() if l.startswith("diff --git "))
    body = text[text.find("diff --git"):]
    added = sum(1 for l in body.splitlines() if l.startswith("+") and not l.startswith("+++"))
    removed = sum(1 for l in body.splitlines() if l.startswith("-") and not l.startswith("---"))
    return {"files": files, "added": added, "removed": removed}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--easyedit", help="EasyEdit checkout at the pinned commit (default: $EASYEDIT_PATH)")
    parser.add_argument("--out-dir", help="write the numbered patches here")
    parser.add_argument("--upto", default="mkeb", choices=PR_ORDER, help="last pull request of the series")
    parser.add_argument("--author", help="'Name <email>' of the commits (default: your git config)")
    parser.add_argument("--inplace", action="store_true", help="write the files into the checkout (never deletes)")
    parser.add_argument("--verify", action="store_true", help="git am the series on a scratch copy and check it")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory of --verify")
    args = parser.parse_args(argv)
    root = _easyedit_dir(args.easyedit)
    try:
        set_author(parse_author(args.author) if args.author else configured_author())
        if not (args.out_dir or args.inplace or args.verify):
            raise SystemExit("error: nothing to do; give --out-dir, --inplace and/or --verify")
        patches = series_patches(root, args.upto)
        out = Path(args.out_dir) if args.out_dir else None
        paths = []
        for i, (name, text, size) in enumerate(patches, 1):
            print(f"{i}. {name}: {size['files']} files, +{size['added']} -{size['removed']} lines")
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"{i:04d}-easyedit-{name}.patch"
                path.write_text(text, encoding="utf-8")
                paths.append(path)
        if args.verify:
            from .verify import verify_series

            work = Path(__import__("tempfile").mkdtemp(prefix="memla-upstream-"))
            try:
                result = verify_series(root, [(n, t) for n, t, _ in patches], work)
            finally:
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
            for line in result["report"]:
                print(line)
            if result["problems"]:
                print("FAILED: " + "; ".join(result["problems"]), file=sys.stderr)
                return 1
        if args.inplace:
            for pr in build_series(root, args.upto):
                _write(root, pr.files)
            print(f"wrote the series' files into {root}")
    except (ExportError, GitError, HostFixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
