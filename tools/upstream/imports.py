"""Plugin imports rewritten as relative imports at the modules' places upstream."""
from __future__ import annotations

import ast
import io
import tokenize
from typing import Optional

from .discovery import SourceModule, is_plugin, resolve_from
from .textedit import Edits, ExportError, parse


def upstream_name(path: str) -> str:
    """``easyeditor/models/memla/neurons/__init__.py`` -> ``easyeditor.models.memla.neurons``."""
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def relative_spec(from_package: str, target: str) -> str:
    """``from <spec> import`` text that reaches ``target`` from inside ``from_package``."""
    here, there = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def rewrite_imports(module: SourceModule, text: str, mapping: dict[str, str],
                    up_is_package: Optional[bool] = None) -> str:
    """Plugin imports -> relative imports at the upstream places given by ``mapping``.

    ``up_is_package``: whether the module's upstream file is a package ``__init__`` (default:
    as in the plugin; a plugin package merged into one upstream module is not).
    """
    tree = parse(text, str(module.path))
    up_self = mapping[module.name]
    up_package = up_self if (module.is_package if up_is_package is None else up_is_package) \
        else up_self.rpartition(".")[0]
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
              if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    ed = Edits(text)
    stmts = {(n.lineno, n.col_offset): n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(is_plugin(a.name) for a in node.names):
            raise ExportError(f"{module.path}:{node.lineno}: `import memla_plugin...` cannot become a relative import")
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "from" and tok.start in stmts:
            node = stmts[tok.start]
            absolute = resolve_from(module, node.level, node.module)
            if not is_plugin(absolute):
                continue
            if absolute not in mapping:
                raise ExportError(f"{module.path}:{node.lineno}: imports {absolute}, which the export does not hold")
            j = i + 1
            while not (tokens[j].type == tokenize.NAME and tokens[j].string == "import"):
                j += 1
            a = ed.off(*tokens[i + 1].start)
            b = ed.off(*tokens[j - 1].end)
            ed.span(a, b, relative_spec(up_package, mapping[absolute]))
        elif (tok.type == tokenize.STRING and i >= 2 and tokens[i - 1].string == "("
              and tokens[i - 2].string == "import_module"):
            literal = ast.literal_eval(tok.string)
            if isinstance(literal, str) and is_plugin(literal):
                if literal not in mapping:
                    raise ExportError(f"{module.path}:{tok.start[0]}: import_module({literal!r}) is not exported")
                spec = relative_spec(up_package, mapping[literal])
                ed.span(ed.off(*tok.start), ed.off(*tok.end), f'"{spec}", __package__')
    out = ed.apply()
    for node in ast.walk(parse(out, str(module.path))):
        if isinstance(node, ast.ImportFrom) and node.module and is_plugin(node.module):
            raise ExportError(f"{module.path}: still imports {node.module}")
    return out
