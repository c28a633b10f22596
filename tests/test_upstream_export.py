"""The upstream generator (tools/upstream): its table, its source rules and the patch series it writes.

The EasyEdit checkout comes from EASYEDIT_PATH or from where `easyeditor` would be imported from.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tools/ lives beside the library, not inside it

from tools.upstream import layout  # noqa: E402
from tools.upstream.__main__ import series_patches  # noqa: E402
from tools.upstream.export import build_series, edit_alg_dict, method_files  # noqa: E402
from tools.upstream.gitpatch import GitError, parse_author, set_author  # noqa: E402
from tools.upstream.host_fixes import FIXES  # noqa: E402
from tools.upstream.source import ExportError, check_vocabulary, shake, strip_names  # noqa: E402


def easyedit_root() -> Path:
    env = os.environ.get("EASYEDIT_PATH")
    if env:
        return Path(env).resolve()
    spec = importlib.util.find_spec("easyeditor")
    if spec is None or not spec.origin:
        pytest.fail("EasyEdit checkout not found: set EASYEDIT_PATH")
    return Path(spec.origin).resolve().parents[1]


@pytest.fixture(scope="module")
def series():
    set_author(("Ada Reviewer", "ada@example.org"))
    return series_patches(easyedit_root(), "speed")


def test_series_is_host_fixes_then_core_then_speed_each_one_commit_by_the_exporter(series):
    assert [name for name, _, _ in series] == ["host-fixes", "core", "speed"]
    for i, (_, text, size) in enumerate(series, 1):
        assert text.count("\nSubject: ") == 1
        assert f"[PATCH {i}/3]" in text
        assert "From: Ada Reviewer <ada@example.org>" in text
        assert "noreply" not in text and "Date: Wed, 1 Jan 2025" not in text
        assert size["files"] > 0 and size["added"] > 0


def test_no_generated_headers_or_plugin_vocabulary_and_nothing_deleted(series):
    for name, text, _ in series:
        assert "deleted file mode" not in text
        assert "Generated from" not in text
        if name != "host-fixes":
            added = [l[1:] for l in text.splitlines() if l.startswith("+") and not l.startswith("+++")]
            assert not check_vocabulary(name, "\n".join(added))


def test_host_fixes_cover_mend_load_archive_and_state_the_mask_rule(series):
    text = series[0][1]
    assert "easyeditor/trainer/utils.py" in text
    assert '+    archive = torch.load(path, map_location="cpu", weights_only=False)' in text
    assert "covers every position" in text or "cover every cached position" in text
    assert {e.path for f in FIXES for e in f.edits} <= {
        l.split(" b/")[1] for l in text.splitlines() if l.startswith("diff --git")}


def test_core_has_reference_attribution_only_and_speed_adds_the_fast_path():
    core, _ = method_files(("core",))
    full, _ = method_files(("core", "speed"))
    memla = layout.METHOD_DIR
    assert f"{memla}/neurons/fast.py" not in core and f"{memla}/neurons/stack.py" not in core
    assert f"{memla}/neurons/fast.py" in full
    assert "LowerLayerCache" not in core[f"{memla}/training.py"]
    assert "LowerLayerCache" in full[f"{memla}/training.py"]
    assert "reuse_lower_layers" not in "".join(core.values())
    for files in (core, full):
        for path, text in files.items():
            ast.parse(text, filename=path)


def test_hparams_use_easyedit_loaders_and_drop_unread_options():
    core, _ = method_files(("core",))
    text = core[f"{layout.METHOD_DIR}/memla_hparams.py"]
    assert "class MEMLAHyperParams(HyperParams):" in text
    assert "normalize_alg_name(load_hparams_config(hparams_name_or_path), ALG_NAME)" in text
    tree = ast.parse(text)
    fields = {n.target.id for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body if isinstance(n, ast.AnnAssign)}
    assert "dtype" not in fields and "id_langs" in fields
    assert "MKEB_LANGS" not in text
    for name in ("def from_json", "def torch_dtype", "def torch_device"):
        assert name not in text


def test_a_request_without_neurons_fails_alone():
    core, _ = method_files(("core",))
    text = core[f"{layout.METHOD_DIR}/memla_main.py"]
    assert "except NoNeuronsError" in text and "continue" in text


def test_yamls_are_named_for_real_models_without_plugin_settings():
    core = build_series(easyedit_root(), "core")[-1].files
    yamls = {p: t for p, t in core.items() if p.startswith("hparams/MEMLA/")}
    assert set(yamls) == {f"hparams/MEMLA/{n}" for n in layout.YAMLS}
    qwen = yamls["hparams/MEMLA/qwen2.5-coder-0.5b-instruct.yaml"]
    assert "./hugging_cache/Qwen2.5-Coder-0.5B-Instruct" in qwen
    assert "dtype" not in "".join(yamls.values())


def test_strip_removes_statements_params_keywords_and_orphaned_locals():
    src = (
        "from helpers import Optional, pick, run\n"
        "def f(x, *, fast: bool = True, label=''):\n"
        "    cache: Optional[Replay] = None\n"
        "    layers = pick(x) if fast else None\n"
        "    if layers is not None:\n"
        "        cache = Replay(layers)\n"
        "    run(x, fast=fast, label=label)\n"
        "    if cache is not None:\n"
        "        cache.restore()\n"
        "    return x\n"
    )
    out = strip_names(src, {"fast", "Replay"})
    body = out.split("\n", 1)[1]
    assert "fast" not in body and "Replay" not in body and "layers" not in body and "cache" not in body
    assert "run(x, label=label)" in out and "def f(x, *, label=''):" in out


def test_shake_removes_unused_defs_and_imports_and_keeps_public_names():
    files = {"a.py": "import os\nimport re\n\ndef used():\n    return re\n\ndef unused():\n    return os\n\n"
                     "class C:\n    def forward(self):\n        return used()\n    def dead(self):\n        pass\n"}
    out, removed = shake(files, keep={"C"})
    assert "def unused" not in out["a.py"] and "import os" not in out["a.py"]
    assert "def forward" in out["a.py"] and "def dead" not in out["a.py"]
    assert sorted(removed) == ["a.py: C.dead", "a.py: unused"]


def test_every_table_row_names_a_known_pull_request():
    assert all(r.pr in layout.PR_ORDER for r in layout.MODULES)
    with pytest.raises(KeyError, match="layout.py"):
        layout.row("memla_plugin.nowhere")


def test_alg_dict_edit_with_and_without_trailing_comma():
    base = "from ..models.rome import ROMEHyperParams, apply_rome_to_model\nALG_DICT = {\n    'ROME': apply_rome_to_model%s\n}\n"
    for comma in ("", ","):
        out = edit_alg_dict(base % comma)
        assert '"MEMLA": apply_memla_to_model' in out
        ast.parse(out)


def test_author_flag_is_checked():
    assert parse_author("Ada Reviewer <ada@example.org>") == ("Ada Reviewer", "ada@example.org")
    with pytest.raises(GitError, match="--author"):
        parse_author("nobody")


def test_unknown_import_fails_with_the_table_named(tmp_path):
    with pytest.raises(ExportError, match="layout.py"):
        from tools.upstream.source import closure

        closure(["memla_plugin.memla_main"], [], {})
