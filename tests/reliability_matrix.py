"""The bad-input matrix of the reliability suite: what is tried, and how each try is run.

Each :class:`Case` gives one bad input to one entry point (``memla-mkeb`` through
``memla_mkeb.app.run_task``, ``memla-edit`` and ``memla-mkeb-convert`` through their
``main``), in-process so the whole matrix costs seconds. A try records an :class:`Outcome`:
exit status, what was printed on stderr, whether any file under the watched folders changed,
and whether a model load was reached (``load_model`` is replaced by a spy that refuses).
``tests/test_reliability_inputs.py`` asserts the promises on every outcome and
``tests/test_reliability_doc.py`` writes them into docs/RELIABILITY.md.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from conftest_bench import TINY_MEMLA, BenchEnv, compose, mkeb_record, write_mkeb

LONG_PROMPT = "x" * 100_000


class ModelLoadReached(Exception):
    """Raised by the load spy: the input was not refused before a model load."""


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(env, case_dir)`` returns the argument list of ``entry``."""

    name: str
    group: str
    tried: str
    entry: str  # "memla-mkeb" | "memla-edit" | "memla-mkeb-convert"
    build: Callable[[BenchEnv, Path], list[str]]
    expect: str  # a fragment the one-line message must hold (paths as <case>)
    status: int = 2
    fresh_run_dir: bool = True  # False: the case works on a copy of a finished run dir


@dataclass
class Outcome:
    status: Optional[int]
    message: str  # the error line on stderr ("<entry>: error: ..."), the case folder written as <case>
    lines: int  # how many error lines there were (progress lines of memla-edit aside)
    wrote: list[str] = field(default_factory=list)  # files created, changed or removed
    model_loaded: bool = False
    error: str = ""  # an exception that escaped the entry point
    made_run_dir: bool = False  # a fresh run dir was created
    traceback: bool = False  # stderr held a traceback


# --------------------------------------------------------------------------- inputs the cases build


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _not_utf8_data(d: Path) -> Path:
    good = json.dumps([mkeb_record(0)], ensure_ascii=False).encode("utf-8")
    return _file(d / "latin1.json", good[:300] + b"\xff\xfe" + good[300:])


def _one_record(d: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    rec = mkeb_record(0)
    edit(rec)
    return _file(d / "bad.json", json.dumps([rec], ensure_ascii=False).encode("utf-8"))


def _long_paraphrase(rec: dict[str, Any]) -> None:
    rec["paraphrase_prompts"]["en"].append(LONG_PROMPT)


def _hparams(d: Path, extra: str = "", raw: Optional[bytes] = None) -> Path:
    (d / "hp" / "MEMLA").mkdir(parents=True, exist_ok=True)
    return _file(d / "hp" / "MEMLA" / "tiny.yaml", raw if raw is not None else (TINY_MEMLA + extra).encode())


def _mkeb(*over: str) -> Callable[[BenchEnv, Path], list[str]]:
    return lambda env, d: env.overrides(*over, run_dir=d / "run")


def _mkeb_with(make: Callable[[Path], list[str]]) -> Callable[[BenchEnv, Path], list[str]]:
    return lambda env, d: env.overrides(*make(d), run_dir=d / "run")


def _edit_cli(*more: str) -> Callable[[BenchEnv, Path], list[str]]:
    def build(env: BenchEnv, d: Path) -> list[str]:
        hp = _hparams(d, f"model_name: {env.model_dir}\n")
        return ["--hparams", str(hp), "--langs", "en", *[m.replace("<case>", str(d)) for m in more]]
    return build


_FACT = ("--prompt", "The capital of France is", "--target-new", "Rome", "--target-true", "Paris")

CASES: list[Case] = [
    # ---- run settings (memla-mkeb)
    Case("seed-not-int", "settings", "`seed=abc`", "memla-mkeb", _mkeb("seed=abc"), "seed='abc': give an integer"),
    Case("threads-negative", "settings", "`run.threads=-1`", "memla-mkeb", _mkeb("run.threads=-1"),
         "run.threads=-1 must be at least 1"),
    Case("max-new-tokens-negative", "settings", "`eval.max_new_tokens=-5`", "memla-mkeb",
         _mkeb("eval.max_new_tokens=-5"), "eval.max_new_tokens=-5 must be at least 1"),
    Case("batch-size-zero", "settings", "`eval.batch_size=0`", "memla-mkeb", _mkeb("eval.batch_size=0"),
         "eval.batch_size=0 must be at least 1"),
    Case("limit-zero", "settings", "`data.limit=0`", "memla-mkeb", _mkeb("data.limit=0"),
         "data.limit=0 must be at least 1"),
    Case("unknown-method", "settings", "`methods=[unedited,foo]`", "memla-mkeb", _mkeb("methods=[unedited,foo]"),
         "unknown method 'foo'"),
    Case("unknown-language", "settings", "`source_langs=[xx]`", "memla-mkeb", _mkeb("source_langs=[xx]"),
         "unknown language 'xx' in source_langs"),
    Case("shard-out-of-range", "settings", "`shard.count=2 shard.index=3`", "memla-mkeb",
         _mkeb("shard.count=2", "shard.index=3"), "shard.index=3 must be in 0..1"),
    Case("unknown-choice", "settings", "`run.restore_check=md5`", "memla-mkeb", _mkeb("run.restore_check=md5"),
         "run.restore_check='md5' unknown"),
    # ---- data files
    Case("data-missing", "data", "`data.path` names no file", "memla-mkeb",
         _mkeb_with(lambda d: [f"data.path={d / 'none.json'}"]), "data file not found: data.path=<case>/none.json"),
    Case("data-not-utf8", "data", "data file with bytes 0xff 0xfe inside (not UTF-8)", "memla-mkeb",
         _mkeb_with(lambda d: [f"data.path={_not_utf8_data(d)}"]),
         "<case>/latin1.json: not UTF-8 text (byte 0xff at byte offset 300"),
    Case("data-not-json", "data", "data file cut off mid-record", "memla-mkeb",
         _mkeb_with(lambda d: ["data.path=" + str(_file(d / "cut.json", b'[{"example_id": 1, '))]),
         "<case>/cut.json: not valid JSON"),
    Case("data-not-list", "data", "data file holding one object, not a list", "memla-mkeb",
         _mkeb_with(lambda d: ["data.path=" + str(_file(d / "obj.json", b'{"a": 1}'))]),
         "expected a JSON list of records, got dict"),
    Case("record-lacks-field", "data", "a record whose zh edit has no `target_new`", "memla-mkeb",
         _mkeb_with(lambda d: [f"data.path={_one_record(d, lambda r: r['edit']['zh'].pop('target_new'))}"]),
         "record 100, lang 'zh': field 'edit.target_new' missing"),
    Case("prompt-too-long", "data", "a 100,000-character paraphrase", "memla-mkeb",
         _mkeb_with(lambda d: ["data.path=" + str(_one_record(d, _long_paraphrase))]),
         "record 100, en, paraphrase_prompts[1]: 100000 characters, over the limit of 1000 (data.max_prompt_chars)"),
    Case("ids-not-utf8", "data", "`data.ids` file with a byte 0xff", "memla-mkeb",
         _mkeb_with(lambda d: ["data.ids=" + str(_file(d / "ids.txt", b"100\n1\xff1\n"))]),
         "test-id file <case>/ids.txt: not UTF-8 text (byte 0xff at byte offset 5"),
    # ---- every method's hparams, before the model loads
    Case("hparams-unknown-key", "hparams", "catalog override `{foo: 1}` for MEMLA", "memla-mkeb",
         _mkeb("++catalog.memla.overrides={foo:1}"), "catalog.memla: unknown MEMLA hparams key(s): foo"),
    Case("hparams-attr-steps-zero", "hparams", "catalog override `attr_steps: 0`", "memla-mkeb",
         _mkeb("++catalog.memla.overrides={attr_steps:0}"), "catalog.memla: attr_steps must be a positive integer"),
    Case("hparams-unknown-id-lang", "hparams", "catalog override `id_langs: [en, xx]`", "memla-mkeb",
         _mkeb("++catalog.memla.overrides={id_langs:[en,xx]}"), "catalog.memla: id_langs has unknown language"),
    Case("hparams-apply-scale-zero", "hparams", "catalog override `apply_scale: 0`", "memla-mkeb",
         _mkeb("++catalog.memla.overrides={apply_scale:0}"), "catalog.memla: apply_scale must be positive"),
    Case("hparams-apply-scale-negative", "hparams", "catalog override `apply_scale: -1`", "memla-mkeb",
         _mkeb("++catalog.memla.overrides={apply_scale:-1}"), "catalog.memla: apply_scale must be positive"),
    Case("hparams-variant", "hparams", "a new catalog entry (MEMLA variant) with `max_steps: 0`", "memla-mkeb",
         _mkeb("+catalog.bad={kind:memla,alg_name:MEMLA,overrides:{max_steps:0}}", "methods=[unedited,bad]"),
         "catalog.bad: max_steps must be a positive integer"),
    Case("hparams-file-unknown-key", "hparams", "hparams file with an unknown key", "memla-mkeb",
         _mkeb_with(lambda d: [f"hparams_dir={_hparams(d, 'attr_stpes: 3' + chr(10)).parents[1]}"]),
         "catalog.memla: <case>/hp/MEMLA/tiny.yaml: unknown MEMLA hparams key(s): attr_stpes"),
    Case("hparams-file-not-utf8", "hparams", "hparams file with a byte 0xff", "memla-mkeb",
         _mkeb_with(lambda d: ["hparams_dir=" + str(_hparams(d, raw=TINY_MEMLA.encode() + b"# \xff\n").parents[1])]),
         "catalog.memla: <case>/hp/MEMLA/tiny.yaml: not UTF-8 text (byte 0xff at byte offset"),
    Case("hparams-file-missing", "hparams", "`catalog.memla.hparams` names no file", "memla-mkeb",
         _mkeb_with(lambda d: [f"++catalog.memla.hparams={d / 'none.yaml'}"]),
         "hparams file for method 'memla' not found: <case>/none.yaml"),
    # ---- memla-edit
    Case("edit-json-folder-missing", "memla-edit", "`--json` into a folder that does not exist", "memla-edit",
         _edit_cli(*_FACT, "--json", "<case>/no/such/dir/out.json"),
         "--json <case>/no/such/dir/out.json: folder <case>/no/such/dir does not exist", status=1),
    Case("edit-data-not-utf8", "memla-edit", "`--data` file that is not UTF-8", "memla-edit",
         lambda env, d: _edit_cli("--record", "100", "--data", str(_not_utf8_data(d)))(env, d),
         "<case>/latin1.json: not UTF-8 text (byte 0xff at byte offset 300", status=1),
    Case("edit-prompt-too-long", "memla-edit", "a 100,000-character `--prompt`", "memla-edit",
         _edit_cli("--prompt", LONG_PROMPT, "--target-new", "Rome", "--target-true", "Paris"),
         "en prompt: 100000 characters, over the limit of 1000 (--max-prompt-chars)", status=1),
    Case("edit-apply-scale-zero", "memla-edit", "`--hparams` file with `apply_scale: 0`", "memla-edit",
         lambda env, d: ["--hparams", str(_hparams(d, f"model_name: {env.model_dir}\napply_scale: 0\n")), *_FACT],
         "apply_scale must be positive", status=1),
    # ---- memla-mkeb-convert
    Case("convert-not-utf8", "memla-mkeb-convert", "`mkeb --src` file that is not UTF-8", "memla-mkeb-convert",
         lambda env, d: ["mkeb", "--src", str(_not_utf8_data(d)), "--out", str(d / "out.json")],
         "<case>/latin1.json: not UTF-8 text (byte 0xff at byte offset 300"),
    Case("convert-bmike-not-utf8", "memla-mkeb-convert", "a BMIKE-53 language file that is not UTF-8",
         "memla-mkeb-convert",
         lambda env, d: ["bmike53", "--src", str(_bmike_dir(d)), "--out", str(d / "out.json")],
         "<case>/bmike/counterfact_test_en.json: not UTF-8 text (byte 0xe9 at byte offset 34"),
]


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def _insert_line(path: Path, at: int, data: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:at] + [data] + lines[at:]))


def _on_finished(edit: Callable[[Path], None], *over: str) -> Callable[[BenchEnv, Path], list[str]]:
    """A run of 3 records on a copy of a finished 2-record run dir (rows to do: a load would follow)."""
    def build(env: BenchEnv, d: Path) -> list[str]:
        edit(d / "run")
        return env.overrides("data.limit=3", *over, run_dir=d / "run")
    return build


RUN_DIR_CASES: list[Case] = [
    Case("resume-other-seed", "run dir", "rerun of a finished run dir with `seed=7`", "memla-mkeb",
         _on_finished(lambda r: None, "seed=7"), "made with other settings (seed: 42 -> 7)", fresh_run_dir=False),
    Case("resume-other-hparams", "run dir", "rerun with another MEMLA override (`max_steps: 3`)", "memla-mkeb",
         _on_finished(lambda r: None, "++catalog.memla.overrides={max_steps:3}"),
         "already has rows for method 'memla' made with other settings (memla.overrides: {} -> {'max_steps': 3})",
         fresh_run_dir=False),
    Case("results-line-not-row", "run dir", "results line `{\"foo\": 1}` (valid JSON, not a row)", "memla-mkeb",
         _on_finished(lambda r: _append(r / "results.jsonl", b'{"foo": 1}\n')),
         "<case>/run/results.jsonl:5: not a row of this file (no 'key', 'method', 'source', 'record_id', 'status')",
         fresh_run_dir=False),
    Case("results-line-malformed", "run dir", "a broken JSON line in the middle of results.jsonl", "memla-mkeb",
         _on_finished(lambda r: _insert_line(r / "results.jsonl", 1, b'{"key": "memla|en|1')),
         "<case>/run/results.jsonl:2: malformed JSON line", fresh_run_dir=False),
    Case("results-line-not-utf8", "run dir", "a results line with a byte 0xff", "memla-mkeb",
         _on_finished(lambda r: _insert_line(r / "results.jsonl", 2, b'{"key": "\xff"}')),
         "<case>/run/results.jsonl:3: not UTF-8", fresh_run_dir=False),
    Case("results-line-list", "run dir", "a results line holding a JSON list", "memla-mkeb",
         _on_finished(lambda r: _append(r / "results.jsonl", b"[1, 2]\n")),
         "<case>/run/results.jsonl:5: a JSON list, not a row object", fresh_run_dir=False),
    Case("unedited-cache-not-row", "run dir", "unedited_cache.jsonl line `{\"a\": 1}`", "memla-mkeb",
         _on_finished(lambda r: _append(r / "unedited_cache.jsonl", b'{"a": 1}\n')),
         "<case>/run/unedited_cache.jsonl:3: not a row of this file (no 'record_id', 'base_id')",
         fresh_run_dir=False),
]


def _bmike_dir(d: Path) -> Path:
    src = d / "bmike"
    src.mkdir()
    _file(src / "counterfact_test_en.json", b'[{"en": {"case_id": 1, "src": "caf\xe9"}}]')
    return src


# --------------------------------------------------------------------------- running one case


def _snapshot(roots: list[Path]) -> dict[str, bytes]:
    """Every file under ``roots`` (lock files aside: a lock is how a run takes a folder)."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else []:
            if p.is_file() and ".locks" not in p.parts and not p.name.endswith(".lock"):
                out[str(p)] = p.read_bytes()
    return out


def _entry(name: str) -> Callable[[list[str]], int]:
    if name == "memla-mkeb":
        from memla_mkeb.app import run_task

        return lambda argv: run_task(compose(argv))
    if name == "memla-edit":
        from memla_plugin.cli.edit import main

        return main
    from memla_plugin.cli.convert import main as convert_main

    return convert_main


def run_case(case: Case, env: BenchEnv, case_dir: Path, patch: Callable[[Any, str, Any], None],
             finished: Optional[Path] = None) -> Outcome:
    """Run ``case`` in ``case_dir`` with model loads refused; what happened, as an :class:`Outcome`.

    ``finished``: a finished run dir, copied to ``case_dir/run`` for cases that resume one."""
    import memla_mkeb.runner as runner
    import memla_plugin.models as models

    loads: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        loads.append(str(args[:1]))
        raise ModelLoadReached("a model load was reached")

    patch(models, "load_model", spy)
    patch(runner, "load_model_once", spy)
    case_dir.mkdir(parents=True, exist_ok=True)
    if not case.fresh_run_dir:
        shutil.copytree(finished, case_dir / "run")
    argv = case.build(env, case_dir)
    watched = [case_dir, env.data.parent / "hparams"]
    before = _snapshot(watched)
    err = io.StringIO()
    status, escaped = None, ""
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = _entry(case.entry)(argv)
        except SystemExit as exc:
            status = int(exc.code or 0)
        except ModelLoadReached:
            escaped = "model load reached"
        except Exception as exc:  # recorded: the promise is that nothing escapes
            escaped = f"{type(exc).__name__}: {exc}"
    after = _snapshot(watched)
    wrote = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    text = err.getvalue().replace(str(case_dir), "<case>")
    errors = [line for line in text.splitlines() if line.startswith(f"{case.entry}: error:")]
    return Outcome(status, errors[0] if errors else text.strip(), len(errors),
                   [w.replace(str(case_dir), "<case>") for w in wrote], bool(loads), escaped,
                   made_run_dir=case.fresh_run_dir and (case_dir / "run").exists(), traceback="Traceback" in text)


def fresh_case_dir(root: Path, case: Case) -> Path:
    d = root / case.name
    if d.exists():
        shutil.rmtree(d)
    return d


__all__ = ["CASES", "RUN_DIR_CASES", "Case", "ModelLoadReached", "Outcome", "fresh_case_dir", "run_case", "write_mkeb"]
