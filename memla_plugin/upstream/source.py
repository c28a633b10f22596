"""Turn the plugin's own MEMLA modules into an EasyEdit method package, mechanically.

The upstream package ``easyeditor/models/memla/`` is *generated* from the plugin's source
files at export time, so there is one implementation to maintain. The plugin package root
``memla_plugin`` becomes ``easyeditor.models.memla`` and the module tree below it is kept,
so relative imports stay valid as they are. What changes:

* import statements that name a plugin module are rewritten to relative imports within the
  exported package (``from memla_plugin.errors import X`` -> ``from .errors import X``;
  ``from .hparams import X`` -> ``from .memla_hparams import X`` where a module is renamed to
  follow EasyEdit's ``<method>_hparams.py`` naming);
* ``import_module("memla_plugin.x")`` becomes ``import_module(".x", __package__)``;
* dotted mentions of plugin modules in comments and docstrings name the upstream module, and
  references to the design notes point at the method README;
* one generated line at the top says where the file came from.

Anything else that names ``memla_plugin`` in code (an attribute access, ``import
memla_plugin``) cannot be rewritten mechanically and raises :class:`ExportError`, so a
change in the plugin that would break the upstream package fails the export, not the user.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from ..errors import MEMLAError

PLUGIN_PKG = "memla_plugin"
UPSTREAM_PKG = "easyeditor.models.memla"

#: plugin module -> exported module (EasyEdit names a method's hparams module <method>_hparams)
RENAMES = {"memla_plugin.hparams": "memla_plugin.memla_hparams"}

#: where the method is documented upstream (the plugin's docstrings cite its design notes)
DOC_REFERENCE = ("DESIGN §", "README §")

#: modules of the plugin that must never end up in the upstream package (host glue, data, CLI)
NOT_EXPORTABLE = (
    "memla_plugin.easyedit",
    "memla_plugin.mkeb",
    "memla_plugin.cli",
    "memla_plugin.models",
    "memla_plugin.setup_env",
    "memla_plugin.upstream",
)

_REF = re.compile(r"\bmemla_plugin\b((?:\.[A-Za-z_]\w*)*)")


class ExportError(MEMLAError):
    """The plugin source cannot be turned into the upstream package (the message says where)."""


@dataclass
class SourceModule:
    """One plugin module: its dotted name, file and whether it is a package ``__init__``."""

    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports in this module are resolved against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass
class RewriteResult:
    text: str
    #: mentions in comments/docstrings of plugin modules that the upstream package lacks
    dangling: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- module discovery
def plugin_root() -> Path:
    """Directory of the installed ``memla_plugin`` package."""
    return Path(__file__).resolve().parents[1]


def module_file(name: str, root: Optional[Path] = None) -> SourceModule:
    """The source file of plugin module ``name`` (a module or a package)."""
    root = root or plugin_root()
    parts = name.split(".")
    if parts[0] != PLUGIN_PKG:
        raise ExportError(f"{name} is not a module of {PLUGIN_PKG}")
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return SourceModule(name, base / "__init__.py", True)
    if base.with_suffix(".py").is_file():
        return SourceModule(name, base.with_suffix(".py"), False)
    raise ExportError(f"plugin module {name} not found under {root}")


def resolve_from(module: SourceModule, level: int, target: Optional[str]) -> str:
    """Absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.package.split(".")
    if level - 1 > len(parts) - 1:
        raise ExportError(f"{module.path}: relative import beyond the top-level package")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _plugin_imports(module: SourceModule) -> set[str]:
    """Plugin modules that ``module`` imports (statements anywhere, and import_module literals)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            absolute = resolve_from(module, node.level, node.module)
            if absolute == PLUGIN_PKG or absolute.startswith(PLUGIN_PKG + "."):
                found.add(absolute)
                for alias in node.names:  # `from . import sub` imports a submodule
                    candidate = f"{absolute}.{alias.name}"
                    try:
                        module_file(candidate)
                    except ExportError:
                        continue
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PLUGIN_PKG or alias.name.startswith(PLUGIN_PKG + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.Call) and _is_import_module(node.func):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                lit = node.args[0].value
                if lit.startswith(PLUGIN_PKG):
                    found.add(lit)
                elif lit.startswith(".") and len(node.args) > 1:
                    found.add(resolve_from(module, len(lit) - len(lit.lstrip(".")), lit.lstrip(".") or None))
    return found


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "import_module") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )


def _top_module(name: str) -> str:
    """``memla_plugin.neurons.fast`` -> ``memla_plugin.neurons`` (a whole subpackage is exported)."""
    parts = name.split(".")
    return ".".join(parts[:2])


def export_closure(roots: Iterable[str], root: Optional[Path] = None) -> list[SourceModule]:
    """Every plugin module the upstream package needs, starting from ``roots``.

    A subpackage is taken whole (its ``__init__`` may load submodules lazily by name), a
    top-level module alone. The plugin's own ``memla_plugin/__init__.py`` is not exported:
    the upstream package gets a generated one.
    """
    root = root or plugin_root()
    seen_top: set[str] = set()
    todo = [_top_module(r) for r in roots]
    modules: dict[str, SourceModule] = {}
    while todo:
        top = todo.pop()
        if top in seen_top or top == PLUGIN_PKG:
            continue
        if any(top == bad or top.startswith(bad + ".") for bad in NOT_EXPORTABLE):
            raise ExportError(
                f"the MEMLA method code imports {top}, which is plugin/host glue and cannot go upstream; "
                f"move what the method needs into a method module"
            )
        seen_top.add(top)
        head = module_file(top, root)
        members = [head]
        if head.is_package:
            pkg_dir = head.path.parent
            for path in sorted(pkg_dir.rglob("*.py")):
                if "__pycache__" in path.parts or path == head.path:
                    continue
                rel = path.relative_to(pkg_dir).with_suffix("")
                parts = list(rel.parts)
                is_pkg = parts[-1] == "__init__"
                if is_pkg:
                    parts = parts[:-1]
                members.append(SourceModule(".".join([top] + parts), path, is_pkg))
        for mod in members:
            modules[mod.name] = mod
            for dep in _plugin_imports(mod):
                todo.append(_top_module(dep))
    return [modules[k] for k in sorted(modules)]


# ---------------------------------------------------------------------------- rewriting
def renamed(name: str) -> str:
    """Apply :data:`RENAMES` to a dotted plugin name (longest matching module prefix)."""
    for old in sorted(RENAMES, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return RENAMES[old] + name[len(old):]
    return name


def exported_path(module: SourceModule) -> str:
    """Path of ``module`` inside ``easyeditor/models/memla/``."""
    parts = renamed(module.name).split(".")[1:]
    if module.is_package:
        return "/".join(parts + ["__init__.py"])
    return "/".join(parts) + ".py"


def relative_spec(from_package: str, target: str) -> str:
    """``from <spec> import`` text reaching plugin module ``target`` from ``from_package``."""
    here, there = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    if common == 0:
        raise ExportError(f"{target} is outside {from_package}")
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def _mention(match: re.Match, known: set[str], dangling: list[str]) -> str:
    name = PLUGIN_PKG + match.group(1)
    parts = name.split(".")
    # longest prefix that is a module; the rest are attributes (memla_main.LAST_EDIT_STATS)
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix == PLUGIN_PKG or prefix in known:
            tail = ".".join(parts[cut:])
            mapped = renamed(prefix).replace(PLUGIN_PKG, UPSTREAM_PKG, 1)
            return mapped + ("." + tail if tail else "")
    dangling.append(name)
    return name.replace(PLUGIN_PKG, UPSTREAM_PKG, 1)


def _offsets(text: str) -> list[int]:
    starts, pos = [0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def rewrite_source(module: SourceModule, text: str, known: set[str]) -> RewriteResult:
    """The upstream text of ``module`` (see the module docstring for what changes)."""
    tree = ast.parse(text, filename=str(module.path))
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    starts = _offsets(text)

    def off(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    import_stmts = {(n.lineno, n.col_offset): n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
    protected: list[tuple[int, int]] = []  # spans already rewritten (no mention substitution)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PLUGIN_PKG:
                    raise ExportError(
                        f"{module.path}:{node.lineno}: `import {alias.name}` cannot be rewritten to a relative "
                        f"import; use `from .x import y` in the plugin"
                    )

    sig = [t for t in tokens if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    for i, tok in enumerate(sig):
        # --- from <spec> import
        if tok.type == tokenize.NAME and tok.string == "from" and tok.start in import_stmts:
            node = import_stmts[tok.start]
            j = i + 1
            while not (sig[j].type == tokenize.NAME and sig[j].string == "import"):
                j += 1
            absolute = resolve_from(module, node.level, node.module)
            if not (absolute == PLUGIN_PKG or absolute.startswith(PLUGIN_PKG + ".")):
                continue
            if node.module is None:
                for alias in node.names:
                    if f"{absolute}.{alias.name}" in RENAMES:
                        raise ExportError(
                            f"{module.path}:{node.lineno}: `from . import {alias.name}` names a renamed module"
                        )
            target = renamed(absolute)
            if target != PLUGIN_PKG and _top_module(target) not in {_top_module(renamed(k)) for k in known}:
                raise ExportError(f"{module.path}:{node.lineno}: imports {absolute}, which is not exported")
            spec = relative_spec(module.package, target)
            a, b = off(sig[i + 1].start), off(sig[j - 1].end)
            edits.append((a, b, spec))
            protected.append((a, b))
        # --- import_module("memla_plugin.x")
        elif (
            tok.type == tokenize.STRING
            and i >= 2
            and sig[i - 1].string == "("
            and sig[i - 2].type == tokenize.NAME
            and sig[i - 2].string == "import_module"
        ):
            try:
                literal = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                continue
            if not isinstance(literal, str) or not literal.startswith(PLUGIN_PKG):
                continue
            if sig[i + 1].string != ")":
                raise ExportError(
                    f"{module.path}:{tok.start[0]}: import_module({literal!r}, ...) with a package argument "
                    f"cannot be rewritten"
                )
            spec = relative_spec(module.package, renamed(literal))
            a, b = off(tok.start), off(tok.end)
            edits.append((a, b, f'"{spec}", __package__'))
            protected.append((a, b))
        elif tok.type == tokenize.NAME and tok.string == PLUGIN_PKG:
            inside = any(a <= off(tok.start) < b for a, b in protected)
            if not inside:
                raise ExportError(
                    f"{module.path}:{tok.start[0]}: code refers to `{PLUGIN_PKG}` by name; only imports can "
                    f"be rewritten for the upstream package"
                )

    out = text
    for a, b, new in sorted(edits, reverse=True):
        out = out[:a] + new + out[b:]

    dangling: list[str] = []
    out = _REF.sub(lambda m: _mention(m, known, dangling), out)
    out = out.replace(*DOC_REFERENCE)
    return RewriteResult(out, dangling)


def header_line(module: SourceModule) -> str:
    rel = "/".join(module.name.split(".")[1:]) or "__init__"
    src = f"memla_plugin/{rel}/__init__.py" if module.is_package else f"memla_plugin/{rel}.py"
    return f"# Generated from memla-plugin's {src} by `python -m memla_plugin.upstream export`.\n"


def check_upstream_module(text: str, path: str) -> None:
    """The generated text parses and names no plugin module in any import."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ExportError(f"generated {path} does not parse: {exc}") from None
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.split(".")[0] == PLUGIN_PKG:
                raise ExportError(f"generated {path} still imports {name}")


# ---------------------------------------------------------------------------- hparams: EasyEdit base class
HPARAMS_DOCSTRING = '''"""MEMLA hyperparameters: EasyEdit's ``HyperParams`` with MEMLA's fields and checks.

Every constant of the method (README §3) is a field whose default is the MEMLA paper's value.
``from_hparams`` reads a YAML file such as ``hparams/MEMLA/qwen2.5-0.5b.yaml``, rejects
unknown keys, a foreign ``alg_name`` and out-of-range values with a message naming the
setting, and reads "1e-3"-style strings of float fields as numbers.
"""'''


def make_hyperparams_subclass(text: str, path: str, class_name: str = "MEMLAHyperParams") -> str:
    """Give ``class_name`` EasyEdit's ``HyperParams`` base (``from ...util.hparams import HyperParams``).

    The plugin defines the dataclass without the base so it does not need EasyEdit; upstream
    every method's hparams class derives from ``HyperParams``. The module docstring, which
    explains the plugin's choice, is replaced by one that describes the upstream class.
    """
    tree = ast.parse(text, filename=path)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if len(classes) != 1:
        raise ExportError(f"{path}: expected one top-level class {class_name}")
    cls = classes[0]
    lines = text.splitlines(keepends=True)
    if cls.bases or cls.keywords:
        raise ExportError(f"{path}: {class_name} already has a base class; the export adds HyperParams itself")
    header = lines[cls.lineno - 1]
    new_header, n = re.subn(rf"^class {class_name}\s*(\(\s*\))?\s*:", f"class {class_name}(HyperParams):", header)
    if n != 1:
        raise ExportError(f"{path}:{cls.lineno}: cannot find the header of class {class_name}")
    lines[cls.lineno - 1] = new_header
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    if not imports:
        raise ExportError(f"{path}: no module-level imports to place the HyperParams import after")
    last = max(n.end_lineno for n in imports)
    lines.insert(last, "from ...util.hparams import HyperParams\n")
    out = "".join(lines)
    doc = ast.get_docstring(tree, clean=False)
    if doc is not None:
        first = tree.body[0]
        body = out.splitlines(keepends=True)
        start, end = first.lineno - 1, first.end_lineno
        out = "".join(body[:start]) + HPARAMS_DOCSTRING + "\n" + "".join(body[end:])
    return out
