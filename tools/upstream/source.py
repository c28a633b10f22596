"""Turn the plugin's MEMLA modules into EasyEdit source, by rules a reviewer can read.

For each module of the export (see :mod:`.layout`) the text goes through, in order:

1. ``subs`` and the strip of names upstream does not offer (:mod:`.strip`): a statement,
   parameter, keyword argument or dict entry that names one of them is removed, and so is
   whatever then reads a local that no longer exists; then the defs a row drops and long
   docstrings (:mod:`.textedit`);
2. import rewriting (:mod:`.imports`): ``from memla_plugin.x import y`` and
   ``import_module("memla_plugin.x")`` become relative imports to the module's place upstream;
3. dead code removal (:mod:`.shake`): functions, classes, methods and module constants that
   nothing in the export uses, then imports nothing uses;
4. the checks (:mod:`.vocabulary`): no plugin names, design-note or issue references, nothing
   about this project's machines, no name read but defined nowhere.

Which plugin modules take part follows from their imports (:mod:`.discovery`). Anything the
rules cannot handle raises :class:`ExportError` naming the file and line. This module gathers
the public names of those modules.
"""
from __future__ import annotations

from .discovery import PLUGIN_PKG, SourceModule, closure, module_file, plugin_imports, plugin_root, resolve_from
from .imports import relative_spec, rewrite_imports, upstream_name
from .shake import prune_imports, shake
from .strip import strip_names
from .textedit import (ExportError, apply_subs, drop_all_lists, drop_defs, parse, replace_docstring,
                       short_docstrings)
from .vocabulary import FORBIDDEN, check_sound, check_vocabulary, clean_references

__all__ = ["ExportError", "FORBIDDEN", "PLUGIN_PKG", "SourceModule", "apply_subs", "check_sound", "check_vocabulary",
           "clean_references", "closure", "drop_all_lists", "drop_defs", "module_file", "parse", "plugin_imports",
           "plugin_root", "prune_imports", "relative_spec", "replace_docstring", "resolve_from", "rewrite_imports",
           "shake", "short_docstrings", "strip_names", "upstream_name"]
