"""Minimal source fixes for the EasyEdit defects this project works around at run time.

Each fix is a one-purpose text substitution in EasyEdit's own files, emitted as its own
patch so a maintainer can take any of them without MEMLA. The plugin applies the same fixes
at run time (``memla_plugin.easyedit.patches``) because it cannot edit the user's checkout;
these are the upstream versions of those workarounds.

* ``generate-fast-kv-mask``: the rule is that with a KV cache the attention mask covers every
  position, cached and new. ``generate_fast`` passes ``attention_mask[:, cur_context]`` (the new
  positions only); transformers 5.x applies the rule, so every generated token attends to
  nothing before it. The fix passes ``attention_mask[:, :cur_context.stop]``.
* ``layer-stats-progress-none``: ``layer_stats(..., progress=None)`` replaces ``None`` by
  ``lambda x: x`` and then calls it with ``total=``, a TypeError. The stand-in accepts it.
* ``mend-checkpoint-plain-config``: MEND's (and SERAC's) state dict pickles the model config
  object, which torch's ``weights_only=True`` default (torch >= 2.6) refuses, so
  ``BaseTrainer.run`` cannot reload its own checkpoint and ``mend_main.py`` loads archives with
  ``weights_only=False``. The fix stores ``config.to_dict()`` and loads with ``weights_only=True``
  everywhere, the same guarantee the plugin gives at run time with an allowlist
  (``memla_plugin.easyedit.checkpoints``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence



class HostFixError(Exception):
    """A host fix does not match the EasyEdit source it is meant for (the message names file and text)."""


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str
    count: int = 1  # how many times ``old`` must occur


@dataclass(frozen=True)
class HostFix:
    name: str
    subject: str
    body: str
    edits: tuple[Edit, ...]

    @property
    def paths(self) -> list[str]:
        return sorted({e.path for e in self.edits})

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body.strip()}\n"


FIXES: tuple[HostFix, ...] = (
    HostFix(
        name="generate-fast-kv-mask",
        subject="generate_fast: let the attention mask cover the KV cache",
        body="""
generate_fast feeds only the new positions (input_ids[:, cur_context]) together
with past_key_values, but also slices the attention mask to those positions.
The rule for a forward with a KV cache is that attention_mask covers every
position, the cached ones and the new ones; transformers 5.x relies on it, so
with the sliced mask every generated token attends to nothing before it:
greedy generation differs from a plain forward pass and the context templates
of ROME, MEMIT and the methods built on them are noise.

Pass attention_mask[:, :cur_context.stop], the mask of everything up to and
including the new positions.
""",
        edits=(
            Edit(
                "easyeditor/util/generate.py",
                "else attention_mask[:, cur_context],",
                "else attention_mask[:, :cur_context.stop],",
            ),
        ),
    ),
    HostFix(
        name="layer-stats-progress-none",
        subject="layer_stats: accept progress=None",
        body="""
layer_stats replaces progress=None by `lambda x: x` and then calls it as
progress(loader, total=batch_count), which raises TypeError. Let the stand-in
accept (and ignore) keyword arguments, in rome and r_rome alike.
""",
        edits=(
            Edit("easyeditor/models/rome/layer_stats.py", "progress = lambda x: x\n", "progress = lambda x, **kwargs: x\n"),
            Edit("easyeditor/models/r_rome/layer_stats.py", "progress = lambda x: x\n", "progress = lambda x, **kwargs: x\n"),
        ),
    ),
    HostFix(
        name="mend-checkpoint-plain-config",
        subject="MEND/SERAC checkpoints: store the model config as a dict, load with weights_only=True",
        body="""
MEND.state_dict (and SERAC's) puts the edited model's config object into the
checkpoint. Since torch 2.6, torch.load defaults to weights_only=True, which
refuses that object: BaseTrainer.run cannot reload the checkpoint it has just
written, nor trainer/utils.py's load_archive read it. mend_main.py gets round
it with weights_only=False, which runs whatever a pickle names, on a file the
user passes as hparams.archive.

Store config.to_dict() instead (plain Python values, which weights_only=True
accepts) and compare against the current model's dict when loading. Every load
then works with torch's safe default, and mend_main.py asks for it explicitly.
A checkpoint written before this change still holds the config object and is
refused with torch's own message; it loads as before with weights_only=False,
for files one trusts.
""",
        edits=(
            Edit(
                "easyeditor/trainer/algs/MEND.py",
                "state_dict[\"model_config\"] = self.model.config  # Include model config\n",
                "state_dict[\"model_config\"] = self.model.config.to_dict()  # plain values: weights_only loads\n",
            ),
            Edit(
                "easyeditor/trainer/algs/MEND.py",
                "if config != self.model.config:\n",
                "if config != self.model.config.to_dict():\n",
            ),
            Edit(
                "easyeditor/trainer/algs/SERAC.py",
                "state_dict[\"model_config\"] = self.model.config  # Include model config\n",
                "state_dict[\"model_config\"] = self.model.config.to_dict()  # plain values: weights_only loads\n",
                count=2,
            ),
            Edit(
                "easyeditor/trainer/algs/SERAC.py",
                "if config != self.model.config:\n",
                "if config != self.model.config.to_dict():\n",
                count=2,
            ),
            Edit(
                "easyeditor/models/mend/mend_main.py",
                "weights_only=False)\n",
                "weights_only=True)\n",
                count=2,
            ),
        ),
    ),
)

FIX_NAMES = tuple(f.name for f in FIXES)


def get_fixes(names: Optional[Sequence[str]] = None) -> list[HostFix]:
    if not names:
        return list(FIXES)
    by_name = {f.name: f for f in FIXES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise HostFixError(f"unknown host fix(es) {unknown}; known: {', '.join(FIX_NAMES)}")
    return [by_name[n] for n in names]


def fix_state(root: Path, fix: HostFix) -> str:
    """``"needed"``, ``"applied"`` (every edit already in place) or raise when the source is unknown."""
    states = []
    for edit in fix.edits:
        path = Path(root) / edit.path
        if not path.is_file():
            raise HostFixError(f"{fix.name}: {edit.path} is missing in {root}")
        text = path.read_text(encoding="utf-8")
        if text.count(edit.old) == edit.count:
            states.append("needed")
        elif edit.old not in text and text.count(edit.new) >= edit.count:
            states.append("applied")
        else:
            raise HostFixError(
                f"{fix.name}: {edit.path} contains {edit.old.strip()!r} {text.count(edit.old)} time(s), expected "
                f"{edit.count}; this EasyEdit version differs from the one the fix was made for"
            )
    if len(set(states)) != 1:
        raise HostFixError(f"{fix.name}: partly applied in {root}")
    return states[0]


def apply_fix(root: Path, fix: HostFix) -> list[str]:
    """Apply ``fix`` to the files under ``root``; returns the paths changed (none if already applied)."""
    if fix_state(root, fix) == "applied":
        return []
    changed = []
    for edit in fix.edits:
        path = Path(root) / edit.path
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
        changed.append(edit.path)
    return sorted(set(changed))


def fixed_files(root: Path, fixes: Sequence[HostFix]) -> dict[str, str]:
    """``{path: text with every fix applied}`` for the files ``fixes`` touch (the checkout is only read)."""
    out: dict[str, str] = {}
    for fix in fixes:
        if fix_state(root, fix) == "applied":
            raise HostFixError(f"{root} already has the host fix {fix.name!r}; use a checkout without it")
        for edit in fix.edits:
            text = out.get(edit.path)
            if text is None:
                text = (Path(root) / edit.path).read_text(encoding="utf-8")
            out[edit.path] = text.replace(edit.old, edit.new)
    return out
