"""Run the test functions of one upstream test file (pytest-style, parametrised by hand) and report.

Usage: ``run_upstream_test.py WORKDIR TEST_FILE``. Prints ``RESULT_JSON: {"passed", "failed", "errors"}``.
"""
import runpy
import sys
import traceback

from _tiny import emit


def main():
    namespace = runpy.run_path(sys.argv[2], run_name="upstream_test")
    passed, errors = 0, []
    for name, fn in sorted(namespace.items()):
        if not (name.startswith("test_") and callable(fn)):
            continue
        marks = getattr(fn, "pytestmark", [])
        cases = [()]
        for mark in marks:
            if mark.name == "parametrize":
                cases = [(v,) for v in mark.args[1]]
        for case in cases:
            try:
                fn(*case)
                passed += 1
            except Exception:
                errors.append(f"{name}{case}: {traceback.format_exc(limit=-2)[-600:]}")
    emit({"passed": passed, "failed": len(errors), "errors": errors})


if __name__ == "__main__":
    main()
