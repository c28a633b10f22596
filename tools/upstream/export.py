"""The files of each pull request of the MEMLA contribution, computed from the plugin and the checkout.

:func:`build_series` returns, per pull request (see :mod:`.layout`), every file it writes with
its full text. The method package comes from the plugin's modules through :mod:`.source`, with
EasyEdit's conventions applied by :mod:`.conventions`; EasyEdit's registries get MEMLA's lines
beside the other methods (:mod:`.registries`); examples, the speed test and the MKEB files come
from ``templates/``; the commit messages are :mod:`.messages`. Nothing is ever deleted: the
export is a starting point that EasyEdit owns once merged.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import layout
from .conventions import easyedit_hparams, per_request_failures, yaml_files
from .host_fixes import FIXES, fixed_files
from .layout import METHOD_DIR, PR_ORDER, ROOTS, Row
from .merge import merge_modules
from .messages import HOST_FIXES_MESSAGE, MESSAGES
from .reflow import join_imports, pack_lists
from .registries import (ALG_DICT, DATASET_INIT, MODELS_INIT, README, check_easyedit_root, edit_alg_dict,
                         edit_dataset_init, edit_models_init, edit_readme)
from .source import (ExportError, apply_subs, check_sound, check_vocabulary, clean_references, closure, drop_all_lists,
                     drop_defs, module_file, replace_docstring, rewrite_imports, shake, short_docstrings, strip_names,
                     upstream_name)

__all__ = ["PullRequest", "build_series", "edit_alg_dict", "method_files", "ExportError"]

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: template file -> (upstream path, pull request): examples and tests, outside the packages
TEMPLATE_FILES = {
    "MEMLA.md": ("examples/MEMLA.md", "core"),
    "run_memla.py": ("examples/run_memla.py", "core"),
    "test_memla_fast_attribution.py": ("tests/test_memla_fast_attribution.py", "speed"),
    "MKEB.md": ("examples/MKEB.md", "mkeb"),
    "run_mkeb.py": ("examples/run_mkeb.py", "mkeb"),
}

#: template file -> (upstream path, pull request): package files with no plugin module behind them
#: (their imports count as uses when dead code is removed)
PACKAGE_TEMPLATES = {
    "mkeb_evaluate_init.py": (f"{layout.EVAL_DIR}/__init__.py", "mkeb"),
}


@dataclass
class PullRequest:
    """One commit of the series: its name, message and ``{path: full new text}``."""

    name: str
    subject: str
    body: str
    files: dict[str, str]
    removed_dead_code: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body.strip()}\n"


def _prepared(row: Row, core: bool) -> str:
    mod = module_file(row.plugin)
    text = (TEMPLATES / row.text if row.text else mod.path).read_text(encoding="utf-8")
    path = row.upstream
    text = apply_subs(text, row.subs + (row.core_subs if core else ()), path)
    names = set(row.strip) | (set(row.core_strip) if core else set())
    text = strip_names(text, names, path)
    for name in sorted(names):  # a stripped name listed among others in a docstring or comment
        text = re.sub(rf"``{re.escape(name)}``, |, ``{re.escape(name)}``(?=[,)])", "", text)
    text = drop_defs(text, row.drop, path)
    if not path.endswith("__init__.py"):
        text = drop_all_lists(text, path)
    text = short_docstrings(text, path)
    text = re.sub(r"(?m)^[ \t]*# -{20,}.*\n", "", text)  # section rulers
    if row.doc:
        text = replace_docstring(text, row.doc, path)
    return text


def method_files(prs: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """``{path: text}`` of the method package once ``prs`` are applied, and the dead code removed."""
    core = "speed" not in prs
    rows = layout.rows_for(prs)
    texts: dict[str, str] = {}
    for r in rows:
        try:
            texts[r.plugin] = _prepared(r, core)
        except ExportError as exc:
            if "not found under" in str(exc):
                continue  # a row for a module that is gone: fine unless something imports it
            raise
    roots = [m for pr in prs for m in ROOTS.get(pr, ())]
    names = closure(roots, [r for r in rows if r.plugin in texts], texts)
    mapping = {n: upstream_name(layout.row(n).upstream) for n in names}
    mapping["memla_plugin"] = METHOD_DIR.replace("/", ".")
    parts: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        r = layout.row(name)
        text = rewrite_imports(module_file(name), texts[name], mapping, r.upstream.endswith("__init__.py"))
        text = clean_references(text, mapping)
        if name == "memla_plugin.hparams":
            text = easyedit_hparams(text, r.upstream)
        if name == "memla_plugin.memla_main":
            text = per_request_failures(text, r.upstream)
        parts.setdefault(r.upstream, []).append((name, re.sub(r"[ \t]+\n", "\n", text)))  # what a removed item left
    files: dict[str, str] = {}
    for path, texts_here in parts.items():  # several plugin modules in one upstream file: joined in table order
        order = [r.plugin for r in rows]
        texts_here.sort(key=lambda item: order.index(item[0]))
        files[path] = texts_here[0][1] if len(texts_here) == 1 else merge_modules(path, upstream_name(path), texts_here)
    files[f"{METHOD_DIR}/__init__.py"] = package_init(files)
    for tmpl, (dest, pr) in PACKAGE_TEMPLATES.items():
        if pr in prs:
            files[dest] = _template(tmpl)
    files, removed = shake(files, layout.PUBLIC)
    # inside a class, a removed method leaves two blank lines where one belongs
    files = {p: join_imports(t) if p.endswith("__init__.py") else t for p, t in files.items()}
    files = {p: pack_lists(re.sub(r"\n{3,}(?=[ \t]+\S)", "\n\n", t).rstrip("\n") + "\n") if p.endswith(".py") else t
             for p, t in files.items()}
    return files, removed


def package_init(files: dict[str, str]) -> str:
    """The method package's ``__init__``: what ``easyeditor`` imports (plus any package docstring)."""
    return (
        '"""MEMLA: multilingual knowledge editing with neuron-masked low-rank adaptation."""\n'
        "from .memla_hparams import MEMLAHyperParams\n"
        "from .memla_main import apply_memla_to_model\n"
    )


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def build_series(easyedit_root: Path, upto: str = "mkeb") -> list[PullRequest]:
    """The pull requests up to ``upto`` (in :data:`PR_ORDER`), each with the files it writes.

    Each method pull request holds the files whose text differs from the state after the
    previous one, so a later pull request may modify a file an earlier one added.
    """
    root = check_easyedit_root(easyedit_root)
    wanted = PR_ORDER[: PR_ORDER.index(upto) + 1]
    series: list[PullRequest] = []
    if "host-fixes" in wanted:
        series.append(PullRequest("host-fixes", *HOST_FIXES_MESSAGE, fixed_files(root, FIXES)))
    # the YAMLs come with the core pull request: keys of options only later ones add stay out
    stripped = {s for r in layout.MODULES for s in r.strip + r.core_strip}
    previous: dict[str, str] = {}
    for i, name in enumerate(PR_ORDER[1:], 1):
        if name not in wanted:
            break
        state, dead = method_files(PR_ORDER[1: i + 1])
        files = {p: t for p, t in state.items() if previous.get(p) != t}
        previous = state
        if name == "core":
            files[MODELS_INIT] = edit_models_init((root / MODELS_INIT).read_text(encoding="utf-8"))
            files[ALG_DICT] = edit_alg_dict((root / ALG_DICT).read_text(encoding="utf-8"))
            if (root / README).is_file():
                files[README] = edit_readme((root / README).read_text(encoding="utf-8"))
            files.update(yaml_files(stripped))
        if name == "mkeb":
            files[DATASET_INIT] = edit_dataset_init((root / DATASET_INIT).read_text(encoding="utf-8"))
        for tmpl, (dest, pr) in TEMPLATE_FILES.items():
            if pr == name:
                files[dest] = _template(tmpl)
        series.append(PullRequest(name, *MESSAGES[name], files, dead))
    problems = [p for pr in series if pr.name != "host-fixes" for path, text in pr.files.items()
                if path.startswith(("easyeditor/", "examples/", "hparams/", "tests/")) and path not in (
                    MODELS_INIT, ALG_DICT, DATASET_INIT) for p in check_vocabulary(path, text)]
    if problems:
        raise ExportError("plugin vocabulary in the upstream files:\n  " + "\n  ".join(problems[:20]))
    ours = (METHOD_DIR, layout.DATASET_DIR, layout.EVAL_DIR, "examples/", "tests/")
    broken = [p for pr in series if pr.name != "host-fixes" for path, text in pr.files.items()
              if path.endswith(".py") and path.startswith(ours) for p in check_sound(path, text)]
    broken += missing_method_modules(series)
    if broken:
        raise ExportError("the transformed code is broken:\n  " + "\n  ".join(broken[:20]))
    return series


def missing_method_modules(series: list[PullRequest]) -> list[str]:
    """``path: imports X, which no pull request writes`` for absolute imports of the method package."""
    written: set[str] = set()
    problems = []
    prefix = METHOD_DIR.replace("/", ".")
    for pr in series:
        written |= set(pr.files)
        for path, text in pr.files.items():
            if not path.endswith(".py") or pr.name == "host-fixes":
                continue
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(prefix):
                    base = node.module.replace(".", "/")
                    if f"{base}.py" not in written and f"{base}/__init__.py" not in written:
                        problems.append(f"{path}: imports {node.module}, which no pull request up to {pr.name} writes")
    return problems
