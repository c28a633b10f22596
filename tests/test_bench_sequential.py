"""Sequential editing in the harness (sequential.n): rows, retention, restore, resume, settings, perplexity."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest_bench import assert_kept_apart, assert_refused_before_load, crash_then_resume, grouped_run, read_keyed
from conftest_bench import bench_env, bench_model_dir, compose, make_bench_env, read_rows  # noqa: F401
from conftest_bench import write_host_hparams
from memla_mkeb import store
from memla_mkeb.runner import run_benchmark


def read_sequences(run_dir: Path) -> dict[str, dict]:
    return read_keyed(run_dir, store.SEQUENCES_GLOB)


SEQ = ("data.limit=4", "sequential.n=2")


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory, bench_model_dir):
    return grouped_run(tmp_path_factory.mktemp("bench_seq"), bench_model_dir, SEQ, read_sequences)


def test_sequence_rows(seq_run):
    env, summary, seqs = seq_run
    assert set(seqs) == {"seq2|memla|en|100", "seq2|memla|en|102"}
    row = seqs["seq2|memla|en|100"]
    assert row["record_ids"] == ["100", "101"] and row["n"] == 2 and row["counts"]["ok"] == 2
    assert [st["position"] for st in row["steps"]] == [0, 1]
    assert all(set(st["scores"]) == {"en", "zh", "fr"} for st in row["steps"])
    assert len(row["final"]["scores"]) == 2 and set(row["final"]["scores"][0]) == {"en", "zh", "fr"}
    assert row["restore"]["checked"] > 0 and row["restore"]["restored"] > 0
    assert "loss_trace" not in row["steps"][0]["edit_stats"]
    # single-edit rows: only the unedited reference
    assert {r["key"] for r in read_rows(env.run_dir)} == {f"unedited|en|{i}" for i in (100, 101, 102, 103)}
    assert summary.written == 6 and summary.restore_checks == 2
    assert not (env.run_dir / "neurons").exists()  # attribution on the edited model, never from the shared cache


def test_first_edit_of_a_sequence_scores_as_a_single_edit(seq_run, tmp_path, bench_model_dir):
    """Before its first edit a sequence's model is the loaded one: edit 1 scores exactly as the single-edit row."""
    env, _, seqs = seq_run
    single = make_bench_env(tmp_path, bench_model_dir)
    run_benchmark(compose(single.overrides("data.limit=1")))
    row = {r["key"]: r for r in read_rows(single.run_dir)}["memla|en|100"]
    assert seqs["seq2|memla|en|100"]["steps"][0]["scores"] == row["scores"]


def test_interrupted_sequence_goes_on_from_its_last_finished_edit(seq_run, tmp_path, bench_model_dir):
    """A crash before the second edit of the second sequence leaves no row for it (the model is put
    back) but its saved state; the rerun loads that state, makes only the missing edit and ends with
    the uninterrupted run's rows. The state is gone once the row is written."""
    _, _, ref = seq_run
    edited: list = []
    left, summary, got = crash_then_resume(tmp_path, bench_model_dir, SEQ, read_sequences, edited=edited)
    assert left == {"seq2|memla|en|100"} and summary.written == 1 and summary.already_done == 5
    assert edited == ["103"]  # record 102's edit came from the saved state
    assert set(got) == set(ref)
    for key, row in got.items():
        assert [s["scores"] for s in row["steps"]] == [s["scores"] for s in ref[key]["steps"]], key
        assert row["final"]["scores"] == ref[key]["final"]["scores"], key
        assert [s["edit_stats"].get("neurons_per_lang") for s in row["steps"]] == \
            [s["edit_stats"].get("neurons_per_lang") for s in ref[key]["steps"]], key
    assert got["seq2|memla|en|102"]["resumed_at"] == [1] and "resumed_at" not in got["seq2|memla|en|100"]
    assert got["seq2|memla|en|102"]["restore"]["checked"] > 0  # undone to the loaded model, bit for bit
    assert not (tmp_path / "run" / ".sequence_state").exists()


def test_saved_sequence_state_round_trip_identity_and_torn_writes(tmp_path):
    """The state reads back with its weights; another identity (settings, code) discards it; a kill
    between writing new weights and the state that names them leaves the older consistent pair."""
    import torch

    from memla_mkeb.seq_state import SequenceState

    ident = {"cfg_id": "a", "code": {"commit": "c1", "dirty": False}}
    st = SequenceState(tmp_path, "seq2|rome|en|7", ident)
    assert st.load() is None
    w1 = {"layers.0.w": torch.arange(6.0).reshape(2, 3)}
    st.save({"steps": [{"position": 0}], "final": {"scores": []}}, w1)
    st.save({"steps": [{"position": 0}], "final": {"scores": [{"en": {}}]}})  # no new weights: keeps the file
    again = SequenceState(tmp_path, "seq2|rome|en|7", ident)
    state = again.load()
    assert state["steps"] == [{"position": 0}] and state["final"]["scores"] == [{"en": {}}]
    assert torch.equal(again.weights()["layers.0.w"], w1["layers.0.w"]) and again.weights() == {}  # handed over once
    # a torn write: new weights on disk, state.json still naming the old ones
    (again.dir / "weights.2.safetensors").write_bytes(b"partial")
    state = SequenceState(tmp_path, "seq2|rome|en|7", ident)
    assert state.load()["weights"] == "weights.1.safetensors"
    assert torch.equal(state.weights()["layers.0.w"], w1["layers.0.w"])
    other = SequenceState(tmp_path, "seq2|rome|en|7", {**ident, "code": {"commit": "c2", "dirty": False}})
    assert other.load() is None and not other.dir.exists()
    # numpy values are written as plain numbers; weights that cannot be read make the sequence start again
    import numpy as np

    st.save({"steps": [{"position": 0, "x": np.float32(0.5)}], "final": {"scores": []}}, w1)
    assert SequenceState(tmp_path, "seq2|rome|en|7", ident).load()["steps"][0]["x"] == 0.5
    (st.dir / "weights.1.safetensors").write_bytes(b"not a safetensors file")
    broken = SequenceState(tmp_path, "seq2|rome|en|7", ident)
    assert broken.load() is None and not broken.dir.exists()


def test_host_sequences_resume_with_their_context_templates(tmp_path, bench_model_dir, monkeypatch):
    """ROME's sequence goes on after a crash with the context templates its first edit generated from
    the loaded model (not from the edited one); LoRA's goes on with its adapter (config, trained weights)
    and its modules' modes: with dropout on, the adapter's modules stay in training mode, so its next edit
    trains with dropout as in one sitting. Both end with the uninterrupted run's rows, bit for bit."""
    from conftest_bench import make_bench_env
    from memla_mkeb.runner import Hooks
    from memla_plugin.easyedit.patches import context_template_caches

    settings = ("data.limit=2", "sequential.n=2", "methods=[unedited,rome,lora]")
    whole = make_bench_env(tmp_path / "whole", bench_model_dir)
    write_host_hparams(whole, lora_dropout=0.5)
    made: dict = {}  # the templates as ROME's sequence leaves them (LoRA's preparation resets them)
    run_benchmark(compose(whole.overrides(*settings)),
                  hooks=Hooks(after_row=lambda row: made.setdefault(row["method"], context_template_caches())))
    ref = read_sequences(whole.run_dir)
    assert made["rome"]  # ROME made them

    env = make_bench_env(tmp_path / "cut", bench_model_dir)
    write_host_hparams(env, lora_dropout=0.5)

    def crash_at(method):
        def hook(spec, source, record):
            if spec.name == method and str(record.example_id) == "101":
                raise KeyboardInterrupt
        return Hooks(before_edit=hook)

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(compose(env.overrides(*settings)), hooks=crash_at("rome"))
    assert (env.run_dir / ".sequence_state").is_dir()
    rome_main = sys.modules["easyeditor.models.rome.rome_main"]
    generated: list = []
    real_generate = rome_main.generate_fast
    monkeypatch.setattr(rome_main, "generate_fast", lambda *a, **k: generated.append(1) or real_generate(*a, **k))
    resumed: dict = {}
    hooks = crash_at("lora")
    hooks.after_row = lambda row: resumed.setdefault(row["method"], context_template_caches())
    with pytest.raises(KeyboardInterrupt):  # ROME goes on and finishes; LoRA stops before its 2nd edit
        run_benchmark(compose(env.overrides(*settings)), hooks=hooks)
    assert set(read_sequences(env.run_dir)) == {"seq2|rome|en|100"}
    (lora_state,) = (env.run_dir / ".sequence_state").iterdir()  # ROME's is cleared, LoRA's kept
    state = json.loads((lora_state / "state.json").read_text())
    assert state["adapter"]["default"]["lora_dropout"] == 0.5 and len(state["steps"]) == 1
    assert any(".lora_dropout." in name for name in state["modes"]["training"])  # left in training mode
    edited: list = []
    hooks = Hooks(before_edit=lambda spec, source, record: edited.append((spec.name, str(record.example_id))))
    run_benchmark(compose(env.overrides(*settings)), hooks=hooks)
    assert edited == [("lora", "101")]  # LoRA's first edit came from the saved state
    got = read_sequences(env.run_dir)
    assert set(got) == set(ref)
    for key, row in got.items():
        assert [s["scores"] for s in row["steps"]] == [s["scores"] for s in ref[key]["steps"]], key
        assert row["final"]["scores"] == ref[key]["final"]["scores"], key
        assert row["restore"]["checked"] > 0
    assert got["seq2|rome|en|100"]["resumed_at"] == [1] and got["seq2|lora|en|100"]["resumed_at"] == [1]
    assert got["seq2|lora|en|100"]["restore"]["restored"] == 1  # the resumed adapter is unloaded
    assert not (env.run_dir / ".sequence_state").exists()
    # the resumed sitting edited with the first sitting's templates; it generated none from the edited model
    assert resumed["rome"] == made["rome"] and generated == []


@pytest.mark.parametrize("setting, message", [
    ("sequential.n=3", r"sequential.n=3 must divide the 4 selected record\(s\) into whole sequences; set data.limit"),
    ("sequential.n=0", r"sequential.n=0 must be at least 1"),
    ("sequential.n=two", r"sequential.n='two': give an integer \(edits per sequence\) or null"),
    ("+sequential.size=2", r"sequential.size is not a setting; sequential has n"),
])
def test_bad_sequential_settings_fail_before_the_model_loads(bench_env, capsys, setting, message):
    assert_refused_before_load(bench_env, capsys, setting, message)


def test_sequential_rows_never_mix_with_single_edit_rows(seq_run):
    """A single-edit run on a sequential run dir is refused (the settings differ), and the keys differ."""
    env, _, seqs = seq_run
    assert_kept_apart(env, seqs, "seq2|")


def test_memla_sequence_keeps_earlier_edits(make_tiny_model, tiny_tok, tmp_path):
    """Two MEMLA edits on the tiny Qwen2, one after the other: the second is trained and merged on top of
    the first (its originals are the first edit's weights), neurons only the first touched keep the first's
    values, both facts are still edited after both, and undoing the sequence gives the loaded model back."""
    import json

    import torch

    from conftest_bench import mkeb_record
    from memla_mkeb.restore import ModelFlags, ParamSnapshot
    from memla_mkeb.sequential import Undo
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import apply_memla_to_model
    from memla_plugin.mkeb import MKEBDataset
    from memla_plugin.mkeb.engine import teacher_forced
    from memla_plugin.mkeb.loader import load_mkeb
    from memla_plugin.tokenisation import encode_prompt, encode_target

    def margin(model, req):  # log P(new) - log P(true) on the edit question
        p = encode_prompt(tiny_tok, req["prompt"])
        new, true = (encode_target(tiny_tok, req[k], "en") for k in ("target_new", "ground_truth"))
        a, b = teacher_forced(model, [(p, new), (p, true)], pad_id=tiny_tok.pad_token_id)
        return a.logprob - b.logprob

    path = tmp_path / "facts.json"
    path.write_text(json.dumps([mkeb_record(i) for i in (0, 4)]), encoding="utf-8")
    req_a, req_b = MKEBDataset(load_mkeb(path, None), edit_lang="en")
    model = make_tiny_model("qwen2")
    snap, flags, undo = ParamSnapshot(model, "exact"), ModelFlags.of(model), Undo()
    hp = MEMLAHyperParams(model_name="tiny", device="cpu", attr_steps=4, lr=0.05, max_steps=60, apply_scale=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _, copy_a = apply_memla_to_model(model, tiny_tok, [req_a], hp, return_orig_weights=True)
    undo.add(model, model, copy_a)
    after_a = {n: p.detach().clone() for n, p in model.named_parameters()}
    margin_a1 = margin(model, req_a)
    _, copy_b = apply_memla_to_model(model, tiny_tok, [req_b], hp, return_orig_weights=True)
    undo.add(model, model, copy_b)
    for name, orig in copy_b.items():  # B was applied on top of A
        assert torch.equal(orig, after_a[name]) and torch.equal(undo.originals[name], before[name])
    touched = {}
    for name in copy_b:  # neurons = input columns of the Linear down-projection
        cols_a = ((after_a[name] - before[name]) != 0).any(0)
        cols_b = ((model.get_parameter(name).detach() - after_a[name]) != 0).any(0)
        only_a = cols_a & ~cols_b
        assert torch.equal(model.get_parameter(name).detach()[:, only_a], after_a[name][:, only_a])
        touched[name] = (int(cols_a.sum()), int(cols_b.sum()), int(only_a.sum()))
    assert sum(t[2] for t in touched.values()) > 0 and any(t[1] > 0 for t in touched.values())
    assert margin(model, req_a) > 0 and margin(model, req_b) > 0 and margin_a1 > 0  # both edits hold
    undo.run(model, flags)
    assert snap.verify(model, "after the sequence") == len(before)


def test_host_editors_chain_and_undo(bench_env):
    """ROME, FT-M and LoRA (its adapter trained on by the second edit, then unloaded) in sequences of 2."""
    write_host_hparams(bench_env)
    summary = run_benchmark(compose(bench_env.overrides("data.limit=2", "sequential.n=2",
                                                        "methods=[unedited,rome,ft_m,lora]")))
    assert summary.errors == 0 and summary.restore_checks == 3
    seqs = read_sequences(bench_env.run_dir)
    assert set(seqs) == {f"seq2|{m}|en|100" for m in ("rome", "ft_m", "lora")}
    for row in seqs.values():
        assert row["counts"] == {"ok": 2, "error": 0, "skipped": 0} and row["restore"]["checked"] > 0
    assert seqs["seq2|lora|en|100"]["restore"]["restored"] == 1  # one unload undoes both LoRA edits
    from memla_mkeb.runner import _MODEL_CACHE

    (model, _, _), = _MODEL_CACHE.values()
    assert not hasattr(model, "peft_config") and not model.is_gradient_checkpointing and not model.training


def test_ike_context_keeps_every_fact_of_a_sequence(monkeypatch):
    """In a sequence, IKE's context is the latest fact's demonstrations and then every fact so far."""
    from types import SimpleNamespace

    from memla_mkeb.ike_editor import IKEEditor
    from memla_mkeb.settings import MethodSpec

    tok = lambda text, add_special_tokens=False: {"input_ids": text.split()}  # noqa: E731
    editor = IKEEditor(MethodSpec("ike", "easyedit", "IKE"), tok, SimpleNamespace())
    monkeypatch.setattr(editor, "_retrieve", lambda model, tok, req: [f"demo for {req['prompt']}\n"])
    facts = [{"prompt": "A is", "target_new": "x"}, {"prompt": "B is", "target_new": "y"}]
    editor.edit(None, tok, facts[0])
    assert editor.context == "demo for A is\nNew Fact: A is x\nPrompt: "  # a single edit: EasyEdit's form
    editor.begin_sequence()
    for fact in facts:
        editor.edit(None, tok, fact)
    assert editor.context == "demo for B is\nNew Fact: A is x\nNew Fact: B is y\nPrompt: "
    # a later sitting takes up the saved state and goes on as if it had never stopped
    later = IKEEditor(MethodSpec("ike", "easyedit", "IKE"), tok, SimpleNamespace())
    monkeypatch.setattr(later, "_retrieve", lambda model, tok, req: [f"demo for {req['prompt']}\n"])
    later.begin_sequence()
    later.resume_sequence(json.loads(json.dumps(editor.sequence_state())))
    assert later.prompt_template("{}") == editor.prompt_template("{}")
    third = {"prompt": "C is", "target_new": "z"}
    editor.edit(None, tok, third)
    later.edit(None, tok, third)
    assert later.context == editor.context == "demo for C is\nNew Fact: A is x\nNew Fact: B is y\nNew Fact: C is z\nPrompt: "
    editor.end_sequence()
    assert editor.context == "" and editor.facts is None


def test_retention_plot_of_a_long_sequence_averages_runs_of_consecutive_edits():
    from memla_mkeb.seq_sections import block_means

    # five edits in runs of two: positions 1-2, 3-4 and 5; the failed edit 3 (None) is left out of its mean
    pts = [(1.0, 1.0), (1.0, 0.0), (None, None), (0.5, 0.25), (0.0, 1.0)]
    xs, now, after = block_means(pts, 2)
    assert xs == [1.5, 3.5, 5.0]
    assert now == [1.0, 0.5, 0.0] and after == [0.5, 0.25, 1.0]
    assert block_means(pts, 1) == ([1.0, 2.0, 3.0, 4.0, 5.0], [a for a, _ in pts], [b for _, b in pts])


@pytest.mark.parametrize("n_methods", range(1, 9))
def test_retention_plot_fits_any_number_of_methods(tmp_path, n_methods):
    from memla_mkeb import seq_sections

    # the figure check refuses a figure more than three times as wide as high (four panels in one row were)
    pts = [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    curves = {f"m{i}": {"ES/e2e": pts, "ES/others": pts} for i in range(n_methods)}
    seq_sections._figure(tmp_path / "r.png", curves, 3, "en")
    assert (tmp_path / "r.png").is_file()


def test_report_gains_retention_section_and_plot(seq_run, tmp_path):
    from memla_mkeb.report import write_report

    env, _, seqs = seq_run
    out = write_report([env.run_dir], tmp_path / "rep.md", n_boot=20)
    md = out.read_text(encoding="utf-8")
    assert "## Sequential retention" in md and "### 2 edits in a row, edited in en" in md
    assert "| memla | 2 | 4/0/0 |" in md and "retention_n2_en.png" in md
    # the unedited model on the same records, ES in the edit language: by hand from its rows
    unedited = [r for r in read_rows(env.run_dir) if r["method"] == "unedited"]
    es = 100 * sum(r["scores"]["en"]["ES"] for r in unedited) / len(unedited)
    (line,) = [x for x in md.splitlines() if x.startswith("| unedited (no edit; 4 of the 4 records) | – | – |")]
    assert line.split("|")[4].strip() == f"{es:.1f}"
    files = tmp_path / "rep_files"
    assert (files / "retention_n2_en.png").is_file()
    csv = (files / "retention.csv").read_text().splitlines()
    assert csv[0] == "method,n,source,position,metric,view,right_after,after_all" and len(csv) == 1 + 2 * 4
    assert "Held-out perplexity" not in md  # no row measured it
    # the runs table's line for the sequences: how many, over how many records
    (line,) = [x for x in md.splitlines() if "| sequences of 2 |" in x]
    assert [c.strip() for c in line.split("|")[5:7]] == [str(len(seqs)), "4"]
    # wall time per edit of the sequences: their totals over their edits, by hand from the rows
    edits = sum(len(r["steps"]) for r in seqs.values())
    per_edit = [sum(r["edit_s"] for r in seqs.values()) / edits, sum(r["eval_s"] for r in seqs.values()) / edits,
                sum(r["final"]["eval_s"] for r in seqs.values()) / edits]
    (line,) = [x for x in md.splitlines() if x.startswith("| memla | 2 | en | 2 | 4 |")]
    assert [float(c) for c in line.split("|")[6:9]] == [round(v, 2) for v in per_edit]
    timing = (files / "sequence_timing.csv").read_text().splitlines()
    assert timing[0].startswith("method,n,source,sequences,edits,edit_s_per_edit,") and len(timing) == 2


def test_report_of_a_sequence_only_run_dir(bench_env, tmp_path):
    """No unedited rows (methods=[memla]): the report still has the sequences."""
    from memla_mkeb.report import write_report

    run_benchmark(compose(bench_env.overrides("data.limit=2", "sequential.n=2", "methods=[memla]")))
    md = write_report([bench_env.run_dir], tmp_path / "r.md", n_boot=20, plots=False).read_text(encoding="utf-8")
    assert "## Sequential retention" in md and "| memla | 1 | 2/0/0 |" in md
    # no single-edit row to time: the wall-time section holds only the sequences' table
    wall = md.split("## Per-edit wall time")[1].split("\n## ")[0]
    assert "### Sequences" in wall and "| memla | 2 | en | 1 | 2 |" in wall and "edit s (mean)" not in wall


def test_shards_split_whole_sequences(bench_env):
    """Planning only (no model): shard.count splits the sequences, never a sequence."""
    from memla_mkeb.planning import plan_run

    plans = [plan_run(compose(bench_env.overrides(*SEQ, "shard.count=2", f"shard.index={i}"))) for i in (0, 1)]
    assert [[[str(r.example_id) for r in q] for q in p.sequences] for p in plans] == [[["100", "101"]],
                                                                                      [["102", "103"]]]
    assert [len(p.sequence_keys()) for p in plans] == [1, 1] and plans[1].tag == ".shard1of2"
    assert [[m.name for m, _, _ in p.keys()] for p in plans] == [["unedited"] * 2, ["unedited"] * 2]


def test_drops_are_after_all_minus_right_after_per_fact():
    from memla_mkeb.seq_sections import drops

    def scores(en, fr, zh):
        return {"en": {"ES": en}, "fr": {"ES": fr}, "zh": {"ES": zh}}

    row = {"source": "en", "record_ids": ["7", "8", "9"],
           "steps": [{"status": "ok", "scores": scores(1.0, 1.0, 0.0)},
                     {"status": "error", "scores": scores(0.0, 0.0, 0.0)},
                     {"status": "ok", "scores": scores(1.0, 0.5, 0.5)}],
           "final": {"scores": [scores(0.0, 0.5, 0.0), scores(1.0, 1.0, 1.0), scores(1.0, 0.5, 0.5)]}}
    # the failed edit of 8 has no drop, nor the last edit (9): nothing came after it
    assert drops([row], "ES", "e2e") == {"7": -1.0}
    assert drops([row], "ES", "others") == {"7": -0.25}  # mean of fr and zh: 0.5 -> 0.25


def test_report_pairs_memla_forgetting_with_each_baseline(bench_env, tmp_path):
    """The forgetting table: MEMLA's drop minus FT-M's on the same facts, as computed by hand from the rows."""
    from memla_mkeb.report import write_report

    write_host_hparams(bench_env)
    run_benchmark(compose(bench_env.overrides("data.limit=4", "sequential.n=2", "methods=[unedited,memla,ft_m]")))
    seqs = read_sequences(bench_env.run_dir)

    def drop(method):
        out = {}
        for first in ("100", "102"):
            row = seqs[f"seq2|{method}|en|{first}"]
            # the first edit of each sequence of 2: the second came after it
            out[first] = row["final"]["scores"][0]["en"]["ES"] - row["steps"][0]["scores"]["en"]["ES"]
        return out

    m, f = drop("memla"), drop("ft_m")
    want = 100 * sum(m[r] - f[r] for r in m) / len(m)
    md = write_report([bench_env.run_dir], tmp_path / "r.md", n_boot=20, plots=False).read_text(encoding="utf-8")
    assert "Forgetting, paired by fact" in md
    (line,) = [x for x in md.splitlines() if x.startswith("| memla | ft_m |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "2" and cells[3].split(" [")[0] == f"{want:+.1f}".replace("-0.0", "+0.0")
    # the Findings say the same in words: the interval's verdict against ft_m, and the locality after all N
    verdict = cells[4]
    said = (f"{verdict} than ft_m ({cells[3]})" if verdict.startswith("forgets") else f"{verdict} against ft_m")
    assert f"`memla`, ES in the edit language: {said}." in md.split("## Composite")[0]
    rows = [seqs[f"seq2|memla|en|{first}"] for first in ("100", "102")]
    assert all(step["status"] == "ok" for r in rows for step in r["steps"])
    ns = [sum(v["NS_cf"] for lang, v in sc.items() if lang != "en") / (len(sc) - 1)
          for r in rows for sc in r["final"]["scores"]]
    assert f"NS_cf in the other languages after all 2: memla {100 * sum(ns) / len(ns):.1f}, ft_m " in md
    # no single edit of memla in these rows: the comparison with the best baseline says where MEMLA is
    assert "there are no single edits of `memla` (its sequences are compared under" in md
