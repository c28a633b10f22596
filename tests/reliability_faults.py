"""The fault half of the reliability suite: kill -9, racing runs, damaged model caches.

Runs are real ``memla_mkeb.runner.run_benchmark`` calls on the tiny Qwen2. The killed and
racing ones run in forked children (``os.fork``: no second import of torch, so a trial costs
about a second), which end by ``SIGKILL`` (sent by themselves at a chosen point, or by the
parent at a seeded random moment). Every run is resumed in this process; its rows are then
compared with an uninterrupted reference run. Memory release between rows (``gc.collect``,
which takes long in a big test process and is not under test here) is switched off.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from conftest_bench import BenchEnv, compose, make_bench_env, read_rows

TRIAL_OVERRIDES = ("data.limit=3", "methods=[unedited,memla]", "run.share_neurons=false")
KILL_KINDS = ("after a row", "as an edit begins", "mid-way through writing a row", "at a random moment")


def _by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in rows}


def run_in_child(cfg: Any, model: Any, tok: Any, log: Path, setup: Optional[Callable[[], Any]] = None) -> int:
    """Fork; the child runs ``cfg`` on the injected model (after ``setup()``, which may return hooks),
    writes its stderr to ``log`` and exits with run_task's statuses (0, 2). Returns the child's pid."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        sys.stderr = open(log, "w", encoding="utf-8")
        sys.stdout = sys.stderr
        from memla_mkeb.runner import run_benchmark
        from memla_plugin.errors import MEMLAError

        hooks = setup() if setup is not None else None
        try:
            run_benchmark(cfg, model=model, tok=tok, hooks=hooks)
            status = 0
        except MEMLAError as exc:
            print("memla-mkeb: error: " + " ".join(str(exc).split()), file=sys.stderr)
            status = 2
        sys.stderr.flush()
    finally:
        os._exit(status)


def wait(pid: int) -> Optional[int]:
    """The child's exit status, or None when a signal ended it."""
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def _suicide() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_setup(kind: str, point: int) -> Callable[[], Any]:
    """What the child arms before it runs: SIGKILL to itself at the ``point``-th row / edit / write."""

    def setup() -> Any:
        from memla_mkeb import store
        from memla_mkeb.runner import Hooks

        count = [0]

        def tick(*_: Any) -> None:
            count[0] += 1
            if count[0] == point:
                _suicide()

        if kind == "after a row":
            return Hooks(after_row=tick)
        if kind == "as an edit begins":
            return Hooks(before_edit=tick)
        if kind == "mid-way through writing a row":
            append = store.JsonlWriter.append

            def half_append(self: Any, row: dict[str, Any]) -> None:
                if self.path.name.startswith("results") and count[0] + 1 == point:
                    line = json.dumps(row, sort_keys=True).encode("utf-8")
                    self._fh.write(line[: len(line) // 2])
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
                    _suicide()
                if self.path.name.startswith("results"):
                    count[0] += 1
                append(self, row)

            store.JsonlWriter.append = half_append
        return None

    return setup


@dataclass
class FaultReport:
    """What the fault trials found; every count here is asserted by tests/test_reliability_faults.py."""

    kills: Counter = field(default_factory=Counter)  # kind -> trials
    rows_expected: int = 0
    lost: int = 0
    duplicated: int = 0
    differing: int = 0  # resumed rows whose scores differ from the uninterrupted run
    partial_lines_left: int = 0  # trials whose kill left a partial last line (cut on resume)
    killed_before_end: int = 0  # trials in which the child died before finishing
    races: Counter = field(default_factory=Counter)  # outcome -> count
    race_duplicates: int = 0
    race_meta_changed: int = 0  # plan.json/config.yaml of the winner changed by a refused run
    problems: list[str] = field(default_factory=list)


def _check_resumed(report: FaultReport, run_dir: Path, before: dict[str, dict[str, Any]],
                   reference: dict[str, dict[str, Any]], label: str, same_settings: bool = True) -> None:
    """Every key of ``reference`` once, the rows seen ``before`` unchanged, and (``same_settings``:
    the run used the reference's settings) the reference's scores."""
    rows = read_rows(run_dir)
    counts = Counter(r["key"] for r in rows)
    dup = sum(c - 1 for c in counts.values())
    after = _by_key(rows)
    lost = len(set(reference) - set(after)) + sum(1 for k, row in before.items() if after.get(k) != row)
    differ = sum(1 for k, row in after.items()
                 if same_settings and k in reference and (row["scores"], row["status"]) != (reference[k]["scores"],
                                                                                            reference[k]["status"]))
    report.rows_expected += len(reference)
    report.lost += lost
    report.duplicated += dup
    report.differing += differ
    if lost or dup or differ:
        report.problems.append(f"{label}: lost {lost}, duplicated {dup}, differing {differ}")


def kill_trials(root: Path, model_dir: Path, model: Any, tok: Any, reference: dict[str, dict[str, Any]],
                full_s: float, n: int = 20, seed: int = 2026) -> FaultReport:
    """``n`` seeded kill -9 trials, each resumed in this process and checked against ``reference``."""
    from memla_mkeb.runner import run_benchmark

    rng = random.Random(seed)
    report = FaultReport()
    n_rows = len(reference)
    for i in range(n):
        kind = KILL_KINDS[i % len(KILL_KINDS)]
        env = make_bench_env(root / f"kill{i}", model_dir)
        cfg = compose(env.overrides(*TRIAL_OVERRIDES))
        point = rng.randint(1, n_rows - 1) if kind != "as an edit begins" else rng.randint(1, n_rows // 2)
        delay = rng.uniform(0.0, full_s)
        pid = run_in_child(cfg, model, tok, env.root / "child.log",
                           None if kind == "at a random moment" else _kill_setup(kind, point))
        if kind == "at a random moment":
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
        status = wait(pid)
        report.kills[kind] += 1
        report.killed_before_end += status is None
        results = env.run_dir / "results.jsonl"
        raw = results.read_bytes() if results.is_file() else b""
        report.partial_lines_left += bool(raw) and not raw.endswith(b"\n")
        before = _by_key(read_rows(env.run_dir))
        run_benchmark(compose(env.overrides(*TRIAL_OVERRIDES)), model=model, tok=tok)
        _check_resumed(report, env.run_dir, before, reference, f"trial {i} ({kind}, point {point})")
    return report


def race_trials(root: Path, model_dir: Path, model: Any, tok: Any, reference: dict[str, dict[str, Any]],
                report: FaultReport, n: int = 4, seed: int = 7) -> None:
    """Two runs started 0-0.5 s apart on one run dir (half of them with another seed for the second)."""
    rng = random.Random(seed)
    for i in range(n):
        env = make_bench_env(root / f"race{i}", model_dir)
        first = compose(env.overrides(*TRIAL_OVERRIDES))
        second = compose(env.overrides(*TRIAL_OVERRIDES, *(("seed=7",) if i % 2 else ())))
        seeds = (42, 7 if i % 2 else 42)
        a = run_in_child(first, model, tok, env.root / "a.log")
        time.sleep(rng.uniform(0.0, 0.5))
        b = run_in_child(second, model, tok, env.root / "b.log")
        statuses = (wait(a), wait(b))  # either may take the lock first; the other is refused or finds all done
        logs = [(env.root / f"{x}.log").read_text(encoding="utf-8") for x in "ab"]
        for status, log in zip(statuses, logs):
            if status == 0:
                report.races["finished or had nothing to do"] += 1
            elif status == 2 and "in use by another memla-mkeb process" in log:
                report.races["refused: run dir in use"] += 1
            elif status == 2 and "made with other settings" in log:
                report.races["refused: other settings"] += 1
            else:
                report.problems.append(f"race {i}: status {status}: {log[-300:]}")
        rows = read_rows(env.run_dir)
        report.race_duplicates += sum(c - 1 for c in Counter(r["key"] for r in rows).values())
        plan = json.loads((env.run_dir / "plan.json").read_text(encoding="utf-8"))
        sittings = (env.run_dir / "sittings.jsonl").read_text(encoding="utf-8").splitlines()
        ran = {seed for seed, status in zip(seeds, statuses) if status == 0}
        winner = ran.pop() if len(ran) == 1 else 42  # with one seed both may end with 0 (one had nothing to do)
        report.race_meta_changed += plan["seed"] != winner or len(sittings) != 1
        _check_resumed(report, env.run_dir, _by_key(rows), reference, f"race {i}", same_settings=winner == 42)


def reference_run(root: Path, model_dir: Path, model: Any, tok: Any) -> tuple[BenchEnv, dict[str, Any], float]:
    """An uninterrupted run (made in a child, as the trials are); its rows and its wall time."""
    env = make_bench_env(root / "reference", model_dir)
    t0 = time.perf_counter()
    status = wait(run_in_child(compose(env.overrides(*TRIAL_OVERRIDES)), model, tok, env.root / "child.log"))
    full_s = time.perf_counter() - t0
    assert status == 0, (env.root / "child.log").read_text()
    return env, _by_key(read_rows(env.run_dir)), full_s


__all__ = ["FaultReport", "KILL_KINDS", "TRIAL_OVERRIDES", "kill_trials", "race_trials", "reference_run",
           "run_in_child", "wait"]


# --------------------------------------------------------------------------- damaged model caches

CACHE_DIMS = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 2}


def mid_model(tok: Any) -> Any:
    """A Qwen2 large enough (about 9 MB of weights) that a tensor lies wholly between the first
    and the last MiB of its safetensors file, which every load fingerprints."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(5)
    cfg = Qwen2Config(vocab_size=len(tok), num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.eos_token_id, **CACHE_DIMS)
    return Qwen2ForCausalLM(cfg).eval()


def tensor_span(st_file: Path, name: str) -> tuple[int, int]:
    """Byte range of tensor ``name``'s data in a safetensors file (8-byte header length, JSON header)."""
    raw = st_file.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    start, stop = json.loads(raw[8:8 + n])[name]["data_offsets"]
    return 8 + n + start, 8 + n + stop


def overwrite(st_file: Path, name: str, byte: int, length: int = 4096) -> int:
    """Overwrite ``length`` bytes in the middle of tensor ``name`` (file size unchanged); returns the offset."""
    start, stop = tensor_span(st_file, name)
    offset = (start + stop) // 2 - length // 2
    with open(st_file, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([byte]) * length)
    return offset


def build_default_cache(model: Any, tok: Any, with_digests: bool = True) -> Path:
    """Write ``model`` where the default model's converted cache lives ($MEMLA_CACHE), manifest included."""
    from memla_plugin.models import default_model
    from memla_plugin.models.integrity import param_digests

    def build(out: Path) -> dict[str, Any]:
        model.save_pretrained(out)
        tok.save_pretrained(out)
        if not with_digests:
            return {}
        return {"param_sha256": {n: [d[0], list(d[1]), d[2]] for n, d in param_digests(model).items()}}

    return default_model.build_cached(default_model.default_cache_dir(), build)
