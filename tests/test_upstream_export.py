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
    return series_patches(easyedit_root(), "mkeb")


def test_series_is_host_fixes_core_speed_mkeb_each_one_commit_by_the_exporter(series):
    assert [name for name, _, _ in series] == ["host-fixes", "core", "speed", "mkeb"]
    for i, (_, text, size) in enumerate(series, 1):
        assert text.count("\nSubject: ") == 1
        assert f"[PATCH {i}/4]" in text
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


def test_host_fixes_make_mend_checkpoints_weights_only_and_state_the_mask_rule(series):
    text = series[0][1]
    added = [l[1:] for l in text.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert not any("weights_only=False" in l for l in added), "the host fixes must not widen torch.load"
    assert '+        state_dict["model_config"] = self.model.config.to_dict()  # plain values: weights_only loads' in text
    assert "-        d = torch.load(params.archive, map_location='cpu', weights_only=False)" in text
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
    # the neuron cache comes with the speed pull request; the attribution loop survives the strip
    assert f"{memla}/neurons/cache.py" not in core and f"{memla}/neurons/cache.py" in full
    main_core = core[f"{memla}/memla_main.py"]
    assert "neuron_cache_dir" not in "".join(core.values()) and "cache" not in main_core.replace("use_cache", "")
    assert "per_lang[lang] = neurons.find_neurons(" in main_core and "_cache_id(" in full[f"{memla}/memla_main.py"]
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


def test_mkeb_pull_request_adds_dataset_evaluation_and_example_only():
    prs = build_series(easyedit_root(), "mkeb")
    mkeb = prs[-1]
    assert mkeb.name == "mkeb"
    paths = set(mkeb.files)
    for expected in ("easyeditor/dataset/mkeb/dataset.py", "easyeditor/dataset/mkeb/convert.py",
                     "easyeditor/evaluate/mkeb/scoring.py", "easyeditor/evaluate/mkeb/metrics.py",
                     "easyeditor/evaluate/mkeb/__init__.py", "easyeditor/dataset/__init__.py",
                     "examples/MKEB.md", "examples/run_mkeb.py"):
        assert expected in paths, expected
    assert "from .mkeb import MKEBDataset" in mkeb.files["easyeditor/dataset/__init__.py"]
    scoring = mkeb.files["easyeditor/evaluate/mkeb/scoring.py"]
    assert "kv_fork" not in scoring and "share_prompts" not in scoring
    assert "shipped" not in "".join(mkeb.files.values())
    assert not any(p.startswith("easyeditor/models/memla/neurons/") for p in paths)


def test_docstrings_keep_their_first_paragraph_only():
    from tools.upstream.source import short_docstrings

    src = 'def f():\n    """Summary line.\n\n    Long notes.\n    """\n    return 1\n'
    out = short_docstrings(src, "x.py")
    assert '"""Summary line."""' in out and "Long notes" not in out
    ast.parse(out)


def test_strip_keeps_a_loop_whose_last_if_is_stripped_and_closures():
    src = (
        "def f(xs, cache):\n"
        "    out = []\n"
        "    for x in xs:\n"
        "        if x is None:\n"
        "            continue\n"
        "        if cache is not None:\n"
        "            cache.put(x)\n"
        "        out.append(x)\n"
        "    def g(y):\n"
        "        return y + len(out)\n"
        "    return [g(o) for o in out]\n"
    )
    out = strip_names(src, {"cache"})
    assert "out.append(x)" in out and "if x is None" in out and "return y + len(out)" in out
    assert "cache" not in out


def test_strip_leaves_pass_where_an_orphaned_local_was_a_body_alone():
    # the strip takes `cache.close()`; `x = 2` in `try` and the loop's dead locals are then never read
    src = (
        "def f(xs, cache=None):\n"
        "    for x in xs:\n"
        "        try:\n"
        "            x = 2\n"
        "        finally:\n"
        "            if cache is not None:\n"
        "                cache.close()\n"
        "    for y in xs:\n"
        "        a = 1\n"
        "        # a comment between\n"
        "        b = len(\n"
        "            xs)\n"
        "    return 1\n"
    )
    out = strip_names(src, {"cache"})
    assert out == (
        "def f(xs):\n"
        "    for x in xs:\n"
        "        try:\n"
        "            pass\n"
        "        finally:\n"
        "            pass\n"
        "    for y in xs:\n"
        "        pass\n"
        "    return 1\n"
    )


def test_strip_drops_an_unset_option_test_whose_kept_branch_is_pass_alone():
    src = (
        "def f(xs, cache=None):\n"
        "    for x in xs:\n"
        "        if x:\n"
        "            if cache is None:\n"
        "                pass\n"
        "            else:\n"
        "                cache.drop()\n"
        "            break\n"
        "        if cache is None:\n"
        "            pass\n"
        "    return 1\n"
    )
    out = strip_names(src, {"cache"})
    assert out == "def f(xs):\n    for x in xs:\n        if x:\n            break\n    return 1\n"


def test_strip_promotes_an_else_branch_with_its_decorators():
    # the body of `if method == "fast"` is all stripped, so the else branch takes the if's place
    src = (
        "import functools\n"
        "def f(method, x):\n"
        "    if method == \"fast\":\n"
        "        atp.record(x)\n"
        "    else:\n"
        "        @functools.cache\n"
        "        def g(y):\n"
        "            return y + 1\n"
        "        x = g(x)\n"
        "    return x\n"
    )
    out = strip_names(src, {"atp"})
    assert out == (
        "import functools\n"
        "def f(method, x):\n"
        "    @functools.cache\n"
        "    def g(y):\n"
        "        return y + 1\n"
        "    x = g(x)\n"
        "    return x\n"
    )


def test_drop_defs_removes_named_methods_with_their_comments():
    from tools.upstream.source import drop_defs

    src = "class A:\n    def keep(self):\n        return 1\n\n    #: note\n    def gone(self):\n        return 2\n"
    out = drop_defs(src, ["A.gone"], "a.py")
    assert "gone" not in out and "note" not in out and "def keep" in out
    with pytest.raises(ExportError, match="layout.py"):
        drop_defs(src, ["A.missing"], "a.py")


def test_soundness_check_finds_undefined_names_and_emptied_functions():
    from tools.upstream.source import check_sound

    assert check_sound("ok.py", "import os\ndef f():\n    return os.sep\n") == []
    problems = check_sound("bad.py", 'def f():\n    return gone\ndef g():\n    """Doc."""\n    pass\n')
    assert any("gone" in p for p in problems) and any("nothing left" in p for p in problems)


def test_soundness_check_finds_a_context_manager_that_lost_its_yield():
    """Stripping the value a context manager yields takes its ``yield`` with it: no longer a generator."""
    from tools.upstream.source import check_sound

    src = ("from contextlib import contextmanager\nfrom typing import Optional\n\n\n@contextmanager\n"
           "def frame(model):\n    state = model.training\n    cache: Optional[Cache] = None\n    try:\n        model.eval()\n"
           "        cache = Cache(model)\n        yield cache\n    finally:\n        model.train(state)\n\n\n"
           "class Cache:\n    def __init__(self, model):\n        self.model = model\n")
    assert check_sound("ok.py", src) == []
    stripped = strip_names(src, {"Cache"}, "frame.py")
    assert "yield" not in stripped and "model.eval()" in stripped
    assert check_sound("frame.py", stripped) == ["frame.py:6: context manager frame() has no yield left"]
    nested = "import contextlib\n\n@contextlib.contextmanager\ndef f():\n    def g():\n        yield 1\n    g()\n"
    assert check_sound("n.py", nested) == ["n.py:4: context manager f() has no yield left"]


def test_strip_removes_a_stripped_option_from_a_literal_not_the_whole_statement():
    src = ('FLOATS = (\n    "lr",\n    "locality_weight",\n)\nINTS = ("steps", "locality_prompts", "seed")\n'
           'def f(h):\n    return [getattr(h, n) for n in FLOATS + INTS]\n')
    out = strip_names(src, {"locality_weight", "locality_prompts"})
    assert "locality" not in out and '"lr"' in out and '"steps"' in out and '"seed"' in out
    assert "return [getattr(h, n) for n in FLOATS + INTS]" in out
    ast.parse(out)


def test_core_is_sized_like_a_recent_method_pr(series):
    """Recent method pull requests landed as 13-22 files and 660-1,200 lines; core stays within both
    (the plugin's extras are stripped by name, its module table replaced by the YAMLs' templates)."""
    core = dict((name, size) for name, _, size in series)["core"]
    assert core["files"] <= 22
    assert core["added"] <= 1200, core


def test_pack_lists_changes_layout_only():
    from tools.upstream.reflow import WIDTH, pack_lists

    src = (
        "def f(\n    a,\n    b: int = 1,\n) -> None:\n"
        "    x = g(\n        'one, two',  # a comment keeps the layout\n        a,\n    )\n"
        "    y = h(a, [\n        1,\n        2,\n    ])\n"
        "    raise ValueError(\n        f'{a} is '\n        'wrong'\n    )\n"
        "    return (\n        a,\n    )\n"
    )
    out = pack_lists(src)
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(src))
    assert out.startswith("def f(a, b: int = 1) -> None:\n")
    assert "# a comment keeps the layout\n        a,\n    )" in out
    assert "y = h(a, [1, 2])" in out and "return (a,)" in out
    assert "raise ValueError(f'{a} is '\n                     'wrong')" in out
    assert all(len(line) <= WIDTH for line in out.splitlines())


def test_generator_modules_have_one_job_each():
    """Modules of tools/upstream stay under 450 lines and their functions under 80."""
    for path in sorted((Path(__file__).resolve().parents[1] / "tools" / "upstream").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 450, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 80, f"{path}: {node.name}"


def test_merged_modules_share_one_file_with_one_import_block():
    from tools.upstream.merge import merge_modules

    a = ('"""Module a."""\nfrom __future__ import annotations\n\nfrom typing import Optional\n\nimport torch\n\n'
         "from .errors import Boom\n\nLIMIT = 3\n\n\ndef f(x: Optional[int]):\n    return torch.tensor(x)\n")
    b = ('"""Module b."""\nfrom __future__ import annotations\n\nfrom typing import Iterable, Optional\n\n'
         "from .both import f\nfrom .errors import Boom\n\nLIMIT = 3\n\n\ndef g(xs: Iterable[int]):\n"
         "    from .both import LIMIT\n    return [f(x) for x in xs][:LIMIT]\n")
    out = merge_modules("pkg/both.py", "pkg.both", [("p.a", a), ("p.b", b)])
    ast.parse(out)
    assert out.startswith('"""Module a."""') and "Module b" not in out
    assert out.count("from __future__") == 1 and "from typing import Iterable, Optional" in out
    assert out.count("from .errors import Boom") == 1 and "from .both" not in out
    assert out.count("LIMIT = 3") == 1 and "def f" in out and "def g" in out
    with pytest.raises(ExportError, match="defined by both"):
        merge_modules("pkg/both.py", "pkg.both", [("p.a", a), ("p.b", b.replace("LIMIT = 3", "LIMIT = 4"))])


def test_strip_treats_a_stripped_option_as_unset():
    src = (
        "from helpers import fast, log, plain, reference, settings, wide\n"
        "def f(model, batch, result, report, locality=None):\n"
        "    if locality is None:\n"
        "        lp = plain(model, batch)\n"
        "    else:\n"
        "        lp, loc = wide(model, batch)\n"
        "    loss = -lp\n"
        "    if locality is not None:\n"
        "        loss = loss + locality.term(loc)\n"
        "    if settings.implementation == 'fast':\n"
        "        fn = fast\n"
        "    else:\n"
        "        fn = reference\n"
        "    log(result, report)\n"
        "    return fn(loss), report\n"
        "def g(model) -> tuple[int, Report]:\n"
        "    updates, report = f(model, 1, 2)\n"
        "    return updates\n"
    )
    out = strip_names(src, {"locality", "implementation", "report", "Report"})
    ast.parse(out)
    assert "lp = plain(model, batch)" in out and "wide(" not in out and "locality" not in out
    assert "fn = reference" in out and "fn = fast" not in out
    assert "return fn(loss)\n" in out and "log(result)" in out
    assert "def g(model):" in out and "updates = f(model, 1, 2)" in out and "report" not in out


def test_core_training_has_the_paper_loss_only():
    core, _ = method_files(("core",))
    training = core[f"{layout.METHOD_DIR}/training.py"]
    assert "locality" not in training and "logits_to_keep" not in training
    assert "lp_new, lp_true = _target_logprobs(model, batch)" in training
    full, _ = method_files(("core", "speed", "mkeb"))
    assert "locality" not in full[f"{layout.METHOD_DIR}/training.py"]
    assert "edit_report" not in "".join(full) and "EditReport" not in "".join(full.values())
