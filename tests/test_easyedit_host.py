"""The EasyEdit side stays out of the way when it is not used and fails clearly when EasyEdit is missing.

Both run in a fresh interpreter: the test session itself may already have imported easyeditor.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_import_memla_plugin_does_not_import_easyeditor():
    proc = run_python(
        """
        import sys
        import memla_plugin
        import memla_plugin.easyedit
        from memla_plugin.easyedit import register, load_hparams, prepare_baseline, get_apply_fn, apply_host_fixes
        heavy = sorted(m for m in ("easyeditor", "torch", "transformers") if m in sys.modules)
        print("HEAVY", heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_register_without_easyedit_names_the_fix():
    proc = run_python(
        """
        import sys
        sys.modules["easyeditor"] = None  # EasyEdit not installed
        from memla_plugin.easyedit import register, load_hparams
        from memla_plugin.errors import EasyEditNotFoundError, MEMLAError
        for call in (register, lambda: load_hparams("ROME", "x.yaml")):
            try:
                call()
            except EasyEditNotFoundError as exc:
                assert isinstance(exc, (MEMLAError, ImportError))
                print("ERR", exc)
            else:
                raise SystemExit("no error")
        """
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 2
    assert all("EASYEDIT_PATH" in line and "memla-setup" in line for line in lines)
