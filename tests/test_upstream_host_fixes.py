"""The host-fix patches: one small patch per EasyEdit defect, each shown failing on a copy of the
pinned checkout and passing with its patch (fresh interpreters, tiny Qwen2 model, CPU)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from memla_plugin.upstream import host_fix_patches
from memla_plugin.upstream.__main__ import main as cli_main
from memla_plugin.upstream.gitpatch import patch_files
from memla_plugin.upstream.host_fixes import FIX_NAMES, FIXES, HostFixError, apply_fix, fix_state, get_fixes
from memla_plugin.upstream.verify import verify_host_fixes

from test_upstream_export import easyedit_root


@pytest.fixture(scope="module")
def fix_patches(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixes")
    paths = {}
    for name, text in host_fix_patches(easyedit_root()).items():
        paths[name] = out / f"{name}.patch"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def _changed_lines(text: str) -> tuple[list[str], list[str]]:
    diff = text[text.index("diff --git"):]
    plus = [l for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    minus = [l for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    return plus, minus


def test_each_fix_is_its_own_minimal_patch(fix_patches):
    assert set(fix_patches) == set(FIX_NAMES) == {
        "generate-fast-kv-mask", "layer-stats-progress-none", "trainer-reload-weights-only",
    }
    seen: set[str] = set()
    for fix in FIXES:
        text = fix_patches[fix.name].read_text(encoding="utf-8")
        files = patch_files(text)
        assert sorted(files) == fix.paths and set(files.values()) == {"M"}
        assert not seen & set(files), "two fixes touch the same file"
        seen |= set(files)
        plus, minus = _changed_lines(text)
        assert len(plus) == len(minus) == len(fix.edits)  # one line replaced per edit, nothing else
        assert text.startswith("From ") and f"Subject: [PATCH] {fix.subject.split(':')[0]}" in text
    gen = fix_patches["generate-fast-kv-mask"].read_text()
    assert "+" in gen and "attention_mask[:, :cur_context.stop]" in _changed_lines(gen)[0][0]
    assert "attention_mask[:, cur_context]" in _changed_lines(gen)[1][0]


def test_fix_state_apply_and_unknown_source(tmp_path):
    root = tmp_path / "EasyEdit"
    for fix in FIXES:
        for rel in fix.paths:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(easyedit_root() / rel, root / rel)
    for fix in FIXES:
        assert fix_state(root, fix) == "needed"
        assert apply_fix(root, fix) == fix.paths
        assert fix_state(root, fix) == "applied"
        assert apply_fix(root, fix) == []
    with pytest.warns(UserWarning, match="unknown commit"), pytest.raises(FileExistsError):
        host_fix_patches(root)  # the checkout already has the fixes
    target = root / "easyeditor/util/generate.py"
    target.write_text(target.read_text().replace("attention_mask[:, :cur_context.stop]", "something_else"))
    with pytest.raises(HostFixError, match="generate-fast-kv-mask"):
        fix_state(root, get_fixes(["generate-fast-kv-mask"])[0])
    with pytest.raises(HostFixError, match="unknown host fix"):
        get_fixes(["no-such-fix"])


def test_cli_lists_and_writes_fix_patches(tmp_path, capsys):
    assert cli_main(["host-fixes", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in FIX_NAMES)
    assert cli_main(["host-fixes", "--easyedit", str(easyedit_root()), "--out-dir", str(tmp_path / "d"),
                     "--patch", str(tmp_path / "all.patch"), "--only", "layer-stats-progress-none"]) == 0
    assert [p.name for p in sorted((tmp_path / "d").iterdir())] == ["0001-easyedit-layer-stats-progress-none.patch"]
    assert "easyeditor/models/rome/layer_stats.py" in capsys.readouterr().out


def test_each_defect_fails_before_and_passes_after_its_patch(fix_patches, tmp_path):
    """Pristine copy: every probe hits the known defect. Copy with the patches: every probe passes."""
    res = verify_host_fixes(easyedit_root(), fix_patches, tmp_path)
    before, after = res["before"], res["after"]
    assert res["problems"] == [], res["problems"]

    gen_before = before["generate-fast-kv-mask"]
    assert gen_before["ok"] is False and gen_before["matching_prompts"] < gen_before["n_prompts"]
    assert after["generate-fast-kv-mask"]["ok"] is True
    assert after["generate-fast-kv-mask"]["fast"] == after["generate-fast-kv-mask"]["reference"]

    assert before["layer-stats-progress-none"]["ok"] is False
    assert "unexpected keyword argument 'total'" in before["layer-stats-progress-none"]["error"]
    assert after["layer-stats-progress-none"]["ok"] is True
    assert all(n > 0 for n in after["layer-stats-progress-none"]["token_counts"].values())

    assert before["trainer-reload-weights-only"]["ok"] is False
    assert "Weights only load failed" in before["trainer-reload-weights-only"]["error"]
    assert after["trainer-reload-weights-only"]["ok"] is True
    assert after["trainer-reload-weights-only"]["reloads"] == ["False"]

    for side in (before, after):
        assert Path(side["easyeditor_file"]).resolve().is_relative_to(tmp_path.resolve())
