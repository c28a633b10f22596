"""MEMLA as an EasyEdit patch: generated from the plugin's modules, applied to a copy of the
pinned checkout, and run in a fresh interpreter that cannot import memla_plugin.

The EasyEdit checkout comes from ``EASYEDIT_PATH`` (set by CI) or from where ``easyeditor``
would be imported from; nothing here names a path of this machine.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import yaml

from memla_plugin.upstream import PINNED_COMMIT, export_inplace, export_patch, isolated
from memla_plugin.upstream.__main__ import main as cli_main
from memla_plugin.upstream.export import (
    ALG_DICT,
    MODELS_INIT,
    edit_alg_dict,
    edit_models_init,
    upstream_yaml,
)
from memla_plugin.upstream.gitpatch import apply_patch, patch_files
from memla_plugin.upstream.source import (
    ExportError,
    SourceModule,
    export_closure,
    exported_path,
    rewrite_source,
)

REPO = Path(__file__).resolve().parents[1]


def easyedit_root() -> Path:
    """The EasyEdit checkout under test: $EASYEDIT_PATH, else where `easyeditor` is importable from."""
    env = os.environ.get("EASYEDIT_PATH")
    if env:
        return Path(env).resolve()
    spec = importlib.util.find_spec("easyeditor")  # finds the package without importing it
    if spec is None or not spec.origin:
        pytest.fail("EasyEdit checkout not found: set EASYEDIT_PATH (see README, EasyEdit set-up)")
    return Path(spec.origin).resolve().parents[1]


@pytest.fixture(scope="module")
def memla_patch(tmp_path_factory):
    text, result = export_patch(easyedit_root())
    path = tmp_path_factory.mktemp("patch") / "memla.patch"
    path.write_text(text, encoding="utf-8")
    return text, result, path


# ----------------------------------------------------------------------------- what the patch touches


def test_patch_touches_only_memla_files_and_follows_easyedit_naming(memla_patch):
    text, result, _ = memla_patch
    files = patch_files(text)
    modified = {p for p, s in files.items() if s != "A"}
    assert modified == {"easyeditor/models/__init__.py", "easyeditor/util/alg_dict.py"}
    assert all(s in ("A", "M") for s in files.values())
    added = {p for p, s in files.items() if s == "A"}
    allowed = ("easyeditor/models/memla/", "hparams/MEMLA/", "examples/run_memla_mkeb.py", "examples/MEMLA.md")
    assert all(p.startswith(allowed) for p in added), sorted(added)
    # EasyEdit's layout: <method>_hparams.py, <method>_main.py, an __init__ exporting both
    for name in ("__init__.py", "memla_hparams.py", "memla_main.py", "README.md"):
        assert f"easyeditor/models/memla/{name}" in added
    assert {p.split("/")[-1] for p in added if p.startswith("hparams/MEMLA/")} == {
        p.name for p in (REPO / "hparams" / "MEMLA").glob("*.yaml")
    }
    # no batch editing for MEMLA: the BatchEditor enum is left alone
    assert "easyeditor/editors/batch_editor.py" not in files
    assert PINNED_COMMIT in text  # the base commit is named in the message
    assert not result.warnings


def test_registry_lines(memla_patch):
    text = memla_patch[0]
    text = text[text.index("diff --git"):]  # the diffs, not the commit message
    added = [l[1:] for l in text.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert "from ..models.memla import MEMLAHyperParams, apply_memla_to_model" in added
    assert '    "MEMLA": apply_memla_to_model' in added
    assert "from .memla import *" in added
    removed = [l[1:] for l in text.splitlines() if l.startswith("-") and not l.startswith("---")]
    assert removed == ['    "DEFER": apply_defer_to_model']  # only its missing trailing comma changes


def test_patch_is_reproducible(memla_patch):
    again, _ = export_patch(easyedit_root())
    assert again == memla_patch[0]


def test_no_plugin_name_left_in_the_method_package(memla_patch):
    _, result, _ = memla_patch
    for path, text in result.files.items():
        if not path.startswith("easyeditor/models/memla/"):
            continue
        body = "".join(text.splitlines(keepends=True)[1:])  # the first line says where it was generated from
        assert "memla_plugin" not in body, path
        assert "DESIGN §" not in body, path
        if path.endswith(".py"):
            ast.parse(text)


# ----------------------------------------------------------------------------- the code is the plugin's code


def _normalise(tree: ast.Module, package: str, upstream: bool) -> str:
    """AST dump with imports made absolute in the plugin's namespace and docstrings dropped."""

    def to_plugin(name: str) -> str:
        if upstream:
            name = name.replace("easyeditor.models.memla", "memla_plugin", 1)
            name = name.replace("memla_plugin.memla_hparams", "memla_plugin.hparams")
        return name

    def absolute(level: int, module: str | None) -> str:
        base = package.split(".")
        base = base[: len(base) - (level - 1)] if level else []
        return ".".join(base + ([module] if module else []))

    body = []
    for node in ast.walk(tree):
        for field in ("body",):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.Expr) and isinstance(
                getattr(stmts[0], "value", None), ast.Constant
            ) and isinstance(stmts[0].value.value, str):
                stmts.pop(0)
        if isinstance(node, ast.ImportFrom):
            node.module, node.level = to_plugin(absolute(node.level, node.module)), 0
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value.startswith(".") and len(node.args) == 2 and getattr(node.args[1], "id", "") == "__package__":
                    dots = len(arg.value) - len(arg.value.lstrip("."))
                    arg.value = to_plugin(absolute(dots, arg.value.lstrip(".") or None))
                    node.args = node.args[:1]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and upstream:
            node.value = node.value.replace("easyeditor.models.memla", "memla_plugin").replace("README §", "DESIGN §")
        if upstream and isinstance(node, ast.ClassDef) and node.name == "MEMLAHyperParams":
            node.bases = []
    tree.body = [
        n for n in tree.body
        if not (isinstance(n, ast.ImportFrom) and n.module == "easyeditor.util.hparams" and upstream)
    ]
    body.append(ast.dump(tree, include_attributes=False))
    return "\n".join(body)


def test_method_code_is_the_plugin_code_with_imports_rewritten(memla_patch):
    _, result, _ = memla_patch
    modules = export_closure(("memla_plugin.memla_main", "memla_plugin.hparams"))
    assert len(modules) == len(result.modules)
    for mod in modules:
        upstream_text = result.files["easyeditor/models/memla/" + exported_path(mod)]
        mine = _normalise(ast.parse(mod.path.read_text(encoding="utf-8")), mod.package, upstream=False)
        package = mod.package.replace("memla_plugin", "easyeditor.models.memla", 1)
        theirs = _normalise(ast.parse(upstream_text), package, upstream=True)
        assert mine == theirs, f"{mod.name}: the exported code differs beyond imports and docstrings"


def test_closure_holds_the_method_and_no_host_glue(memla_patch):
    _, result, _ = memla_patch
    names = set(result.modules)
    assert {"memla_plugin.memla_main", "memla_plugin.hparams", "memla_plugin.training", "memla_plugin.errors",
            "memla_plugin.architectures", "memla_plugin.masked_lora", "memla_plugin.neurons"} <= names
    for glue in ("easyedit", "mkeb", "cli", "models", "setup_env", "upstream"):
        assert not any(n == f"memla_plugin.{glue}" or n.startswith(f"memla_plugin.{glue}.") for n in names)


# ----------------------------------------------------------------------------- rewriting rules


def _mod(name: str, is_package: bool = False) -> SourceModule:
    return SourceModule(name, Path(f"/x/{name.replace('.', '/')}.py"), is_package)


KNOWN = {"memla_plugin.errors", "memla_plugin.hparams", "memla_plugin.training", "memla_plugin.neurons",
         "memla_plugin.neurons.sets", "memla_plugin.memla_main"}


def test_rewrite_rules():
    src = (
        '"""Uses ``memla_plugin.hparams.MEMLAHyperParams`` (DESIGN §3.1)."""\n'
        "from importlib import import_module\n"
        "from ..errors import HParamsError\n"
        "from ..hparams import MEMLAHyperParams\n"
        "from memla_plugin.training import target_ids\n"
        "from .sets import build\n"
        "def f():\n"
        "    from ..errors import MEMLAError  # memla_plugin.errors\n"
        "    return import_module(\"memla_plugin.neurons\"), import_module(\"memla_plugin.training\")\n"
    )
    out = rewrite_source(_mod("memla_plugin.neurons.fast"), src, KNOWN)
    assert "from ..errors import HParamsError\n" in out.text
    assert "from ..memla_hparams import MEMLAHyperParams\n" in out.text
    assert "from ..training import target_ids\n" in out.text
    assert "from .sets import build\n" in out.text
    assert "    from ..errors import MEMLAError  # easyeditor.models.memla.errors\n" in out.text
    assert 'import_module(".", __package__), import_module("..training", __package__)' in out.text
    assert "``easyeditor.models.memla.memla_hparams.MEMLAHyperParams`` (README §3.1)" in out.text
    assert not out.dangling

    top = rewrite_source(_mod("memla_plugin.memla_main"), 'from importlib import import_module\nx = import_module("memla_plugin.neurons")\n', KNOWN)
    assert 'import_module(".neurons", __package__)' in top.text


@pytest.mark.parametrize(
    "src",
    [
        "import memla_plugin.errors\n",
        "from . import errors\nx = memla_plugin.errors\n",
        "from memla_plugin.easyedit import register\n",
        'from importlib import import_module\nx = import_module("memla_plugin.neurons", "pkg")\n',
    ],
)
def test_rewrite_refuses_what_it_cannot_rewrite(src):
    with pytest.raises(ExportError):
        rewrite_source(_mod("memla_plugin.memla_main"), src, KNOWN)


def test_alg_dict_edit_with_and_without_trailing_comma():
    base = "from ..models.rome import apply_rome_to_model\n\nALG_DICT = {\n    'ROME': apply_rome_to_model%s\n}\n"
    for comma in ("", ","):
        out = edit_alg_dict(base % comma)
        assert "from ..models.memla import MEMLAHyperParams, apply_memla_to_model\n" in out
        tree = ast.parse(out)
        keys = [k.value for k in tree.body[-1].value.keys]
        assert keys == ["ROME", "MEMLA"]
        assert edit_alg_dict(out) == out  # idempotent
    with pytest.raises(ExportError):
        edit_alg_dict("ALG_DICT = {}\n")
    assert edit_models_init("from .rome import *\n") == "from .rome import *\nfrom .memla import *\n"
    with pytest.raises(ExportError):
        edit_models_init("x = 1\n")


def test_hparams_yamls_keep_every_value_but_the_model_path():
    for path in sorted((REPO / "hparams" / "MEMLA").glob("*.yaml")):
        mine = yaml.safe_load(path.read_text(encoding="utf-8"))
        text = upstream_yaml(path.read_text(encoding="utf-8"), str(path))
        theirs = yaml.safe_load(text)
        assert theirs["model_name"].startswith("./hugging_cache/") or mine["model_name"].startswith((".", "/"))
        assert {k: v for k, v in theirs.items() if k != "model_name"} == {
            k: v for k, v in mine.items() if k != "model_name"
        }
        for marker in ("memla_plugin", "memla-setup", "PyPI", "GGUF"):
            assert marker not in text, (path.name, marker)
    qwen = yaml.safe_load(upstream_yaml((REPO / "hparams/MEMLA/qwen2.5-0.5b.yaml").read_text(), "qwen"))
    assert qwen["model_name"] == "./hugging_cache/Qwen2.5-Coder-0.5B-Instruct"  # EasyEdit dispatches 'qwen2'


def test_pinned_commit_is_the_projects():
    from memla_plugin.setup_env import EASYEDIT_COMMIT

    assert PINNED_COMMIT == EASYEDIT_COMMIT


# ----------------------------------------------------------------------------- writing in place, CLI


def _minimal_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "EasyEdit"
    for rel in (ALG_DICT, MODELS_INIT, "easyeditor/util/hparams.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(easyedit_root() / rel, root / rel)
    return root


def test_inplace_export_is_idempotent_and_mirrors_the_plugin(tmp_path):
    root = _minimal_checkout(tmp_path)
    changed, result = export_inplace(root)
    assert sorted(changed) == result.paths
    assert export_inplace(root)[0] == []
    stale = root / "easyeditor/models/memla/old_module.py"
    stale.write_text("x = 1\n")
    (root / "easyeditor/models/memla/training.py").unlink()
    assert sorted(export_inplace(root)[0]) == ["easyeditor/models/memla/old_module.py", "easyeditor/models/memla/training.py"]
    assert not stale.exists()
    assert (root / ALG_DICT).read_text().count('"MEMLA": apply_memla_to_model') == 1


def test_cli_export_writes_patch_and_refuses_a_checkout_with_memla(tmp_path, capsys):
    out = tmp_path / "memla.patch"
    assert cli_main(["export", "--easyedit", str(easyedit_root()), "--patch", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "easyeditor/models/memla/memla_main.py" in printed and "files changed" in printed
    assert out.read_text().startswith("From ")
    root = _minimal_checkout(tmp_path)
    export_inplace(root)
    assert cli_main(["export", "--easyedit", str(root), "--patch", str(tmp_path / "again.patch")]) == 2
    assert "already contains MEMLA" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["export", "--easyedit", str(root)])  # neither --patch nor --inplace


# ----------------------------------------------------------------------------- the patched host, without the plugin


def test_patched_easyedit_edits_with_memla_without_the_plugin(memla_patch, tmp_path):
    """git apply to a copy of the pinned checkout; in a fresh interpreter that cannot import
    memla_plugin: BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(...)), one edit on a tiny
    Qwen2 model on CPU (restored bit for bit afterwards), then the MKEB example on en/zh/fr."""
    _, _, patch = memla_patch
    copy = isolated.copy_easyedit(easyedit_root(), tmp_path / "EasyEdit")
    apply_patch(copy, patch)
    result = isolated.run("memla_smoke.py", copy, tmp_path / "work", timeout=900)

    assert result["memla_plugin_importable"] is False
    assert "ModuleNotFoundError" in result["memla_plugin_import_error"]
    assert result["plugin_modules_loaded"] == []
    assert Path(result["easyeditor_file"]).resolve().is_relative_to(copy.resolve())
    assert result["hparams_is_easyedit_hyperparams"] and result["alg_dict_entry"]
    assert result["batchable"] is False
    assert result["shipped_model_name"] == "./hugging_cache/Qwen2.5-Coder-0.5B-Instruct"
    assert result["editor_model_class"] == "Qwen2ForCausalLM"
    assert result["margin_gain"] > 0.5, result  # P(new) rose against P(true) on the edit prompt
    assert result["changed_params"] and all("mlp.down_proj" in p for p in result["changed_params"])
    assert result["restored_bit_identical"]
    assert {"rewrite_acc", "rephrase_acc", "locality"} <= set(result["edit_metrics_keys"])
    summary = result["example_summary"]
    assert set(summary["per_language"]) == {"en", "zh", "fr"}
    en_rel = summary["per_language"]["en"]["reliability"]
    assert en_rel["post"] > en_rel["pre"]  # the edit holds in the edit language (token accuracy)
    assert set(result["example_neurons_per_lang"]) >= {"en", "zh", "fr"}  # MEMLA used all three languages
    assert result["example_outputs"] and result["example_outputs"][0].endswith(".json")
