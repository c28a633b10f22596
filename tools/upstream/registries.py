"""EasyEdit's own files that list the methods and datasets: MEMLA's lines beside the others'."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from .textedit import ExportError

MODELS_INIT = "easyeditor/models/__init__.py"

ALG_DICT = "easyeditor/util/alg_dict.py"

README = "README.md"

DATASET_INIT = "easyeditor/dataset/__init__.py"

ALG_NAME = "MEMLA"


def check_easyedit_root(root: Path) -> Path:
    root = Path(root).resolve()
    for rel in (ALG_DICT, MODELS_INIT, "easyeditor/util/hparams.py"):
        if not (root / rel).is_file():
            raise ExportError(f"{root} is not an EasyEdit checkout: {rel} is missing")
    return root


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
