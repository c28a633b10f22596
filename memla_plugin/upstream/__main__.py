"""``python -m memla_plugin.upstream``: MEMLA as an EasyEdit patch, and the host-fix patches.

    export     --easyedit DIR [--patch OUT.patch] [--inplace] [--verify]
    host-fixes --easyedit DIR [--patch OUT.patch] [--out-dir D] [--only NAME ...] [--inplace] [--verify]

Without ``--inplace`` the checkout is only read. ``--verify`` applies the patch(es) to a scratch
copy and runs the checks in a fresh interpreter that cannot import memla_plugin.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import MEMLAError


def _easyedit_dir(value: Optional[str]) -> Path:
    if value:
        return Path(value).expanduser().resolve()
    import os

    env = os.environ.get("EASYEDIT_PATH")
    if env:
        return Path(env).expanduser().resolve()
    raise SystemExit("error: give --easyedit DIR (an EasyEdit checkout) or set EASYEDIT_PATH")


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _print_stat(path: Path) -> None:
    from .gitpatch import diffstat

    print(f"{path}:")
    print(diffstat(path))


def cmd_export(args) -> int:
    from . import export_inplace, export_patch
    from .isolated import scratch_dir
    from .verify import verify_export

    root = _easyedit_dir(args.easyedit)
    hparams_dir = Path(args.hparams_dir) if args.hparams_dir else None
    if not args.patch and not args.inplace:
        raise SystemExit("error: nothing to do; give --patch OUT.patch and/or --inplace")
    patch_path = None
    if args.patch:
        text, result = export_patch(root, hparams_dir)
        patch_path = _write(Path(args.patch), text)
        print(f"MEMLA export: {len(result.files)} files from {len(result.modules)} plugin modules")
        _print_stat(patch_path)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if args.verify:
        if patch_path is None:
            raise SystemExit("error: --verify checks a patch; give --patch too")
        work = scratch_dir()
        try:
            res = verify_export(root, patch_path, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        keys = ("memla_plugin_import_error", "easyeditor_file", "hparams_is_easyedit_hyperparams", "alg_dict_entry",
                "batchable", "margin_gain", "restored_bit_identical", "_seconds")
        print(json.dumps({k: res.get(k) for k in keys}, indent=2, ensure_ascii=False))
        print(json.dumps(res.get("example_summary", {}).get("other_languages"), ensure_ascii=False))
    if args.inplace:
        changed, result = export_inplace(root, hparams_dir)
        print(f"wrote {len(changed)} file(s) into {root}" + ("" if changed else " (already up to date)"))
        for rel in changed:
            print(f"  {rel}")
    return 0


def cmd_host_fixes(args) -> int:
    from . import host_fix_patches
    from .host_fixes import FIXES, apply_fix, get_fixes
    from .isolated import scratch_dir
    from .verify import verify_host_fixes

    if args.list:
        for fix in FIXES:
            print(f"{fix.name}: {fix.subject} ({', '.join(fix.paths)})")
        return 0
    root = _easyedit_dir(args.easyedit)
    if not (args.patch or args.out_dir or args.inplace):
        raise SystemExit("error: nothing to do; give --patch OUT.patch, --out-dir DIR and/or --inplace")
    patches = host_fix_patches(root, args.only)
    files: dict[str, Path] = {}
    if args.out_dir:
        for i, (name, text) in enumerate(patches.items(), 1):
            files[name] = _write(Path(args.out_dir) / f"{i:04d}-easyedit-{name}.patch", text)
            _print_stat(files[name])
    if args.patch:
        combined = _write(Path(args.patch), "".join(patches.values()))
        _print_stat(combined)
    if args.verify:
        work = scratch_dir()
        try:
            if not files:
                for name, text in patches.items():
                    files[name] = _write(work / "patches" / f"{name}.patch", text)
            res = verify_host_fixes(root, files, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        for name in patches:
            before, after = res["before"].get(name, {}), res["after"].get(name, {})
            print(f"{name}: before ok={before.get('ok')} {before.get('error', '')[:120]}")
            print(f"{' ' * len(name)}  after  ok={after.get('ok')} {after.get('error', '')[:120]}")
        if res["problems"]:
            print("FAILED: " + "; ".join(res["problems"]), file=sys.stderr)
            return 1
    if args.inplace:
        for fix in get_fixes(args.only):
            changed = apply_fix(root, fix)
            print(f"{fix.name}: " + (", ".join(changed) if changed else "already applied"))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memla_plugin.upstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("export", help="write MEMLA into an EasyEdit checkout / as a git patch")
    ex.add_argument("--easyedit", help="EasyEdit checkout (default: $EASYEDIT_PATH)")
    ex.add_argument("--patch", help="write a git patch (format-patch, apply with git am or git apply)")
    ex.add_argument("--inplace", action="store_true", help="write the files into the checkout itself")
    ex.add_argument("--hparams-dir", help="MEMLA YAMLs to export (default: the plugin's hparams/MEMLA)")
    ex.add_argument("--verify", action="store_true", help="apply the patch to a scratch copy and edit a tiny model")
    ex.add_argument("--keep", action="store_true", help="keep the scratch directory of --verify")
    ex.set_defaults(func=cmd_export)

    hf = sub.add_parser("host-fixes", help="patches for EasyEdit defects the project works around")
    hf.add_argument("--easyedit", help="EasyEdit checkout (default: $EASYEDIT_PATH)")
    hf.add_argument("--patch", help="write all selected fixes into one file (a series of format-patch mails)")
    hf.add_argument("--out-dir", help="write one patch file per fix")
    hf.add_argument("--only", nargs="+", metavar="NAME", help="only these fixes (see --list)")
    hf.add_argument("--inplace", action="store_true", help="apply the fixes to the checkout itself")
    hf.add_argument("--verify", action="store_true", help="show each defect on a scratch copy, and its fix")
    hf.add_argument("--keep", action="store_true", help="keep the scratch directory of --verify")
    hf.add_argument("--list", action="store_true", help="list the fixes and exit")
    hf.set_defaults(func=cmd_host_fixes)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (MEMLAError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
