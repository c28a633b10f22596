"""What EasyEdit's conventions ask of the method's own files: hyperparameters loaded with EasyEdit's
helpers, a failed request that fails alone, and ``hparams/MEMLA/`` YAMLs for real model names."""
from __future__ import annotations

import ast
import re

from . import layout
from .discovery import plugin_root
from .textedit import ExportError
from .vocabulary import check_vocabulary

HPARAMS_DIR = "hparams/MEMLA"


def easyedit_hparams(text: str, path: str) -> str:
    """``MEMLAHyperParams(HyperParams)`` whose ``from_hparams`` uses EasyEdit's own loading helpers."""
    tree = ast.parse(text)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MEMLAHyperParams"]
    if len(classes) != 1:
        raise ExportError(f"{path}: expected one class MEMLAHyperParams")
    cls = classes[0]
    lines = text.splitlines(keepends=True)
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    loader = methods.get("from_hparams")
    if loader is None:
        raise ExportError(f"{path}: MEMLAHyperParams has no from_hparams to replace")
    build = "cls.from_dict(config, source=str(hparams_name_or_path))" if "from_dict" in methods else "cls(**config)"
    new_loader = (
        "    @classmethod\n"
        '    def from_hparams(cls, hparams_name_or_path: str) -> "MEMLAHyperParams":\n'
        '        """Read a YAML/JSON file with EasyEdit\'s loader (an unknown key is a TypeError)."""\n'
        "        config = normalize_alg_name(load_hparams_config(hparams_name_or_path), ALG_NAME)\n"
        f"        return {build}\n"
    )
    first = min([loader.lineno] + [d.lineno for d in loader.decorator_list])
    lines[first - 1: loader.end_lineno] = [new_loader]
    header = lines[cls.lineno - 1]
    new_header, n = re.subn(r"^class MEMLAHyperParams\s*(\(\s*\))?\s*:", "class MEMLAHyperParams(HyperParams):", header)
    if n != 1:
        raise ExportError(f"{path}:{cls.lineno}: MEMLAHyperParams already has a base class")
    lines[cls.lineno - 1] = new_header
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    last = max(n.end_lineno for n in imports)
    lines.insert(last, "from ...util.hparams import HyperParams, load_hparams_config, normalize_alg_name\n")
    out = "".join(lines)
    if "ALG_NAME" not in {t.id for n in ast.parse(out).body if isinstance(n, ast.Assign) for t in n.targets
                          if isinstance(t, ast.Name)}:
        raise ExportError(f"{path}: no module constant ALG_NAME for from_hparams to check alg_name against")
    return out


def per_request_failures(text: str, path: str) -> str:
    """A request without knowledge neurons fails alone: ``execute_memla``'s call in the apply
    function's loop catches ``NoNeuronsError``, logs it and goes on with the next request (the
    plugin's own apply function stops the run there)."""
    tree = ast.parse(text)
    apply = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "apply_memla_to_model"]
    calls = [n for n in ast.walk(apply[0]) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
             and getattr(n.value.func, "id", None) == "execute_memla"] if apply else []
    if len(calls) != 1:
        raise ExportError(f"{path}: expected one `... = execute_memla(...)` in apply_memla_to_model")
    stmt = calls[0]
    lines = text.splitlines(keepends=True)
    pad = " " * stmt.col_offset
    call = "".join(lines[stmt.lineno - 1: stmt.end_lineno])
    lines[stmt.lineno - 1: stmt.end_lineno] = [
        f"{pad}try:\n",
        "".join("    " + l if l.strip() else l for l in call.splitlines(keepends=True)),
        f"{pad}except NoNeuronsError as exc:  # this request is not edited; the others go on\n",
        f'{pad}    LOG.error("MEMLA: request %r not edited: %s", request.get("prompt"), exc)\n',
        f"{pad}    continue\n",
    ]
    text = "".join(lines)
    if not re.search(r"^from .* import .*\bNoNeuronsError\b", text, re.M):
        text = _add_import(text, "from .errors import NoNeuronsError\n")
    return text


def _add_import(text: str, line: str, after_all: bool = False) -> str:
    tree = ast.parse(text)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    last = max(n.end_lineno for n in imports) if imports else 0
    lines = text.splitlines(keepends=True)
    lines.insert(last, line)
    return "".join(lines)


def yaml_files(stripped: set[str]) -> dict[str, str]:
    """``hparams/MEMLA/<real model>.yaml`` from the plugin's YAMLs (method values kept as they are)."""
    import yaml

    src_dir = plugin_root().parent / "hparams" / "MEMLA"
    out = {}
    for name, (source, hub, device, note, model_type) in layout.YAMLS.items():
        templates = _module_templates(model_type)
        path = src_dir / source
        if not path.is_file():
            raise ExportError(f"{path} is missing (tools/upstream/layout.py YAMLS names it)")
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        lines = [f"# MEMLA on {hub.split('/')[-1]} ({hub}), {note}; method values of the paper (arXiv 2406.11566)."]
        expected = {}
        raws = path.read_text(encoding="utf-8").splitlines() + [""]
        for raw, after in zip(raws, raws[1:]):
            m = re.match(r"^(\w+)\s*:\s*([^#]*?)\s*(#.*)?$", raw)
            if not m:
                continue  # comments and continuation lines of the plugin's file
            key, value, comment = m.groups()
            if comment and re.match(r"\s+#", after):  # a comment continued below: its first sentence alone
                comment = comment.split(". ")[0].rstrip(".") + "." if ". " in comment else None
            if key in layout.YAML_DEFAULTED and key != "attr_batch_size" and config[key] != _default(key):
                raise ExportError(f"{path}: {key}: {config[key]!r} is not MEMLAHyperParams' default, "
                                  "which the upstream YAML leaves it at (layout.py YAML_DEFAULTED)")
            if key in stripped or key in layout.YAML_DEFAULTED:
                continue
            if key == "model_name":
                value, comment = f"./hugging_cache/{hub.split('/')[-1]}", f"# {hub} from the Hugging Face hub"
            elif key == "device":
                value, comment = str(device), None
            elif key in templates:
                value, comment = f'"{templates[key]}"', None
                config[key] = templates[key]
            if comment and check_vocabulary(name, comment):
                comment = None
            lines.append(f"{key}: {value}" + (f"   {comment}" if comment else ""))
            expected[key] = config[key]
        text = "\n".join(lines) + "\n"
        loaded = yaml.safe_load(text)
        expected.update(model_name=f"./hugging_cache/{hub.split('/')[-1]}", device=device)
        if loaded != expected:
            raise ExportError(f"{path}: the upstream YAML changed a method value")
        out[f"{HPARAMS_DIR}/{name}"] = text
    return out


def _default(key: str):
    """The plugin's MEMLAHyperParams default of ``key``."""
    import dataclasses

    from memla_plugin.hparams import MEMLAHyperParams

    field = {f.name: f for f in dataclasses.fields(MEMLAHyperParams)}[key]
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _module_templates(model_type: str) -> dict[str, str]:
    """``attr_module_tmp``/``edit_module_tmp`` of a model type, from the plugin's architecture table."""
    from memla_plugin.architectures import KNOWN_ARCHITECTURES

    known = KNOWN_ARCHITECTURES[model_type]
    return {"attr_module_tmp": known.attr_module_tmp, "edit_module_tmp": known.edit_module_tmp}
