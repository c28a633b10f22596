"""The files of each pull request of the MEMLA contribution, computed from the plugin and the checkout.

:func:`build_series` returns, per pull request (see :mod:`.layout`), every file it writes with
its full text. The method package comes from the plugin's modules through :mod:`.source`;
EasyEdit's registries (``easyeditor/models/__init__.py``, ``util/alg_dict.py``) get MEMLA's
lines beside the other methods; the YAMLs name real Hugging Face models; examples, the
speed test and the MKEB files come from ``templates/``. Nothing is ever deleted: the export
is a starting point that EasyEdit owns once merged.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import layout
from .host_fixes import FIXES, fixed_files
from .layout import METHOD_DIR, PR_ORDER, ROOTS, Row
from .merge import merge_modules
from .reflow import join_imports, pack_lists
from .source import (
    ExportError,
    apply_subs,
    check_sound,
    check_vocabulary,
    clean_references,
    closure,
    drop_all_lists,
    drop_defs,
    module_file,
    plugin_root,
    replace_docstring,
    rewrite_imports,
    shake,
    short_docstrings,
    strip_names,
    upstream_name,
)

MODELS_INIT = "easyeditor/models/__init__.py"
ALG_DICT = "easyeditor/util/alg_dict.py"
README = "README.md"
HPARAMS_DIR = "hparams/MEMLA"
ALG_NAME = "MEMLA"
TEMPLATES = Path(__file__).resolve().parent / "templates"

DATASET_INIT = "easyeditor/dataset/__init__.py"

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


# ---------------------------------------------------------------------------- the method package
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


# ---------------------------------------------------------------------------- host registries
def edit_models_init(text: str) -> str:
    """``from .memla import *`` after the last method star import."""
    line = "from .memla import *"
    if any(l.strip() == line for l in text.splitlines()):
        return text
    lines = text.splitlines(keepends=True)
    stars = [i for i, l in enumerate(lines) if re.match(r"from \.\w+ import \*\s*$", l)]
    if not stars:
        raise ExportError(f"{MODELS_INIT}: no `from .<method> import *` line to add MEMLA beside")
    if not lines[stars[-1]].endswith("\n"):
        lines[stars[-1]] += "\n"
    lines.insert(stars[-1] + 1, line + "\n")
    return "".join(lines)


def edit_alg_dict(text: str) -> str:
    """Import ``apply_memla_to_model`` and add ``"MEMLA"`` to ``ALG_DICT``."""
    import_line = "from ..models.memla import MEMLAHyperParams, apply_memla_to_model"
    lines = text.splitlines(keepends=True)
    if not any(l.strip() == import_line for l in lines):
        found = [i for i, l in enumerate(lines) if re.match(r"from \.\.\s*models\.\w+ import ", l)]
        if not found:
            raise ExportError(f"{ALG_DICT}: no `from ..models.<method> import` line to add MEMLA beside")
        lines.insert(found[-1] + 1, import_line + "\n")
        text = "".join(lines)
    tree = ast.parse(text)
    tables = [n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
              and any(isinstance(t, ast.Name) and t.id == "ALG_DICT" for t in n.targets)]
    if len(tables) != 1:
        raise ExportError(f"{ALG_DICT}: expected one `ALG_DICT = {{...}}` literal")
    table = tables[0]
    if any(isinstance(k, ast.Constant) and k.value == ALG_NAME for k in table.keys):
        return text
    lines = text.splitlines(keepends=True)
    starts = [0]
    for l in lines:
        starts.append(starts[-1] + len(l))
    indent = re.match(r"\s*", lines[table.keys[-1].lineno - 1]).group(0)
    end = starts[table.values[-1].end_lineno - 1] + table.values[-1].end_col_offset
    close = starts[table.end_lineno - 1] + table.end_col_offset - 1
    entry = f'"{ALG_NAME}": apply_memla_to_model'
    if text[end:close].lstrip().startswith(","):
        comma = end + text[end:close].index(",") + 1
        return text[:comma] + f"\n{indent}{entry}," + text[comma:]
    return text[:end] + f",\n{indent}{entry}" + text[end:]


README_ROW = ("| MEMLA | [Xie et al. 2024](https://arxiv.org/abs/2406.11566) | multilingual: neuron-masked LoRA "
              "on language-independent and language-specific FFN neurons | [examples/MEMLA.md](examples/MEMLA.md) |")


def edit_readme(text: str) -> str:
    """A MEMLA row after the last row of the first markdown table that lists ROME."""
    if "examples/MEMLA.md" in text:
        return text
    lines = text.splitlines(keepends=True)
    rows = [i for i, l in enumerate(lines) if l.lstrip().startswith("|") and "ROME" in l]
    if not rows:
        raise ExportError(f"{README}: no methods table (a row naming ROME) to add MEMLA to")
    i = rows[0]
    while i + 1 < len(lines) and lines[i + 1].lstrip().startswith("|"):
        i += 1
    lines.insert(i + 1, README_ROW + "\n")
    return "".join(lines)


# ---------------------------------------------------------------------------- hparams YAMLs
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


# ---------------------------------------------------------------------------- the series
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def check_easyedit_root(root: Path) -> Path:
    root = Path(root).resolve()
    for rel in (ALG_DICT, MODELS_INIT, "easyeditor/util/hparams.py"):
        if not (root / rel).is_file():
            raise ExportError(f"{root} is not an EasyEdit checkout: {rel} is missing")
    return root


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


def edit_dataset_init(text: str) -> str:
    """``from .mkeb import MKEBDataset`` after the last dataset import."""
    line = "from .mkeb import MKEBDataset"
    if any(l.strip() == line for l in text.splitlines()):
        return text
    lines = text.splitlines(keepends=True)
    found = [i for i, l in enumerate(lines) if re.match(r"from \.\w+ import ", l)]
    if not found:
        raise ExportError(f"{DATASET_INIT}: no `from .<dataset> import` line to add MKEB beside")
    if not lines[found[-1]].endswith("\n"):
        lines[found[-1]] += "\n"
    lines.insert(found[-1] + 1, line + "\n")
    return "".join(lines)


HOST_FIXES_MESSAGE = (
    "Fix generate_fast's cache mask, layer_stats(progress=None) and MEND checkpoints under weights_only",
    """
Three independent fixes, each small, found while adding a method on the pinned
commit with transformers 5.x and torch 2.6+:

- util/generate.py: with past_key_values, the attention mask handed to the
  model must cover every cached position as well as the new ones (transformers
  reads it as the mask of the whole sequence). generate_fast sliced it to the
  new positions only, so under transformers 5.x every generated token attended
  to nothing before it. Pass attention_mask[:, :cur_context.stop].
- models/rome/layer_stats.py, models/r_rome/layer_stats.py: progress=None was
  replaced by `lambda x: x` and then called with total=..., a TypeError.
- trainer/algs/MEND.py, SERAC.py, models/mend/mend_main.py: the state dicts
  pickled the model config object, which torch >= 2.6's default
  weights_only=True refuses (BaseTrainer.run could not reload its own
  checkpoint), and mend_main.py loaded archives with weights_only=False, which
  runs whatever a pickle names. Store config.to_dict() and load with
  weights_only=True everywhere.

Each fix was checked before/after on a tiny Qwen2 model on CPU.
""",
)

CORE_MESSAGE = (
    "Add MEMLA: multilingual knowledge editing with neuron-masked LoRA",
    """
MEMLA (Xie et al. 2024, arXiv:2406.11566) edits a fact in one language so that
the edit carries over to other languages. It attributes the fact to FFN neurons
with integrated gradients in several languages, splits them into language-
independent neurons (shared by the identification languages, en/zh/fr by
default) and language-specific ones, and trains two masked low-rank updates of
the FFN down-projections that touch only those neurons.

- easyeditor/models/memla: MEMLAHyperParams (loaded with load_hparams_config and
  normalize_alg_name), apply_memla_to_model, the reference attribution, neuron
  sets, masked LoRA, training
- ALG_DICT["MEMLA"]; edit() / edit_requests() and sequential editing (no
  batch_edit: requests are edited one after the other). A request whose fact
  has no knowledge neurons is logged and skipped, the run goes on.
- hparams/MEMLA: mGPT and Llama-3-8B (the paper's models) and
  Qwen2.5-Coder-0.5B-Instruct, all with the paper's constants
- examples/MEMLA.md and examples/run_memla.py

This code was written as a separate package first and is offered here as a
starting point: once merged it is EasyEdit's to change. Speed-ups and the MKEB
benchmark follow as separate pull requests.
""",
)

SPEED_MESSAGE = (
    "MEMLA: fast attribution, lower-layer replay in training and a neuron cache",
    """
Three speed-ups of the MEMLA editor, kept apart from the method so they can be
reviewed (or declined) on their own:

- neurons/fast.py, neurons/stack.py: integrated gradients recompute only what a
  patch of layer l at the last prompt position can change (positions from the
  last prompt token on, layers l..L, prefix keys/values cached), with the path
  points of several layers batched. Models whose decoder stack it does not know
  use the reference attribution. It drives decoder layers directly, so it is tied
  to the transformers internals it was written against (checked with
  transformers 5.x on CPU only); the test below compares it with the reference.
  Both this and the replay are on by default in this pull request; if that is
  too much trust in decoder internals, making them opt-in is a one-line change
  each (AttributionSettings.implementation, reuse_lower_layers).
- training.py: layers below the lowest edited one are run once and their output
  replayed during the LoRA steps, and models that accept `logits_to_keep` compute
  logits only for the positions the loss reads.
- neurons/cache.py: `neuron_cache_dir` keeps each fact's selected neurons on
  disk per model, attribution settings and language, in the MEMLA authors' JSON
  format (one file per language), so a fact is attributed once across runs.
  Requests without a case_id are keyed by the content of their attribution
  inputs, so two different facts never share an entry.
- tests/test_memla_fast_attribution.py: fast == reference (scores and selected
  neurons) on tiny random Qwen2 and Llama models on CPU.
""",
)

MKEB_MESSAGE = (
    "Add the MKEB multilingual benchmark: dataset, converter and per-language metrics",
    """
MKEB (Xie et al. 2024, arXiv:2406.11566) evaluates a knowledge edit in up to
twelve languages. This adds it beside the other datasets:

- easyeditor/dataset/mkeb: MKEBRecord and its JSON layout (the authors'
  MLiKE_v2.json), load_mkeb with record validation, MKEBDataset (one
  edit_requests-ready request per record, with every language's version of the
  fact under `languages`), and a converter from the BMIKE-53 release
  (`python -m easyeditor.dataset.mkeb.convert bmike53 --src DIR --out FILE`).
- easyeditor/evaluate/mkeb: score_record / score_records, the MKEB metrics per
  language (ES and PS compare P(target_new) with P(target_true), NS and MQ are
  token-set F1 of a greedy decode against the neighbourhood and multi-hop
  answers) and EasyEdit's token accuracies (rel/gen/loc/port), each metric
  declared once in metrics.py. Scores are per language, not filed under
  portability keys.
- examples/MKEB.md and examples/run_mkeb.py: convert, edit each record, score
  every language before and after.

As with the method, this is offered as a starting point that EasyEdit owns once
merged.
""",
)

MESSAGES = {"core": CORE_MESSAGE, "speed": SPEED_MESSAGE, "mkeb": MKEB_MESSAGE}
