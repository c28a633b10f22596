"""Start a check script with an EasyEdit copy first on ``sys.path`` and ``memla_plugin`` unimportable.

Usage: ``python -I _bootstrap.py EASYEDIT_ROOT SCRIPT [ARGS...]`` or
``python -I _bootstrap.py EASYEDIT_ROOT -m MODULE [ARGS...]``. Run with ``-I`` so neither
``PYTHONPATH`` nor the current directory leaks in; site-packages ``.pth`` hooks still run, so an
editable install of the plugin or a ``.pth`` naming another EasyEdit checkout are removed here.
"""
import importlib.abc
import os
import runpy
import sys

BLOCKED = ("memla_plugin", "memla_mkeb")


class _BlockPlugin(importlib.abc.MetaPathFinder):
    """Makes ``import memla_plugin`` fail however the plugin is installed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked: the upstream EasyEdit code must not need it)", name=fullname
            )
        return None


def _provides(entry, package):
    try:
        return os.path.isfile(os.path.join(entry or os.getcwd(), package, "__init__.py"))
    except (TypeError, ValueError):
        return False


def main():
    module = sys.argv[3] if sys.argv[2] == "-m" else None
    root = os.path.abspath(sys.argv[1])
    script = os.path.abspath(__file__ if module else sys.argv[2])
    args = sys.argv[4:] if module else sys.argv[3:]
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED + ("easyeditor",):
            del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if "memla_plugin" not in type(f).__module__]
    sys.meta_path.insert(0, _BlockPlugin())
    sys.path[:] = [p for p in sys.path if not any(_provides(p, pkg) for pkg in BLOCKED + ("easyeditor",))]
    sys.path.insert(0, os.path.dirname(script))
    sys.path.insert(0, root)
    os.environ["EASYEDIT_UNDER_TEST"] = root
    if module:  # ``-m package.module``: run a module of the EasyEdit copy as ``python -m`` would
        sys.argv = [module] + args
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    sys.argv = [script] + args
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
