"""docs/RESULTS.md: the Findings words follow the intervals, and the file regenerates byte for byte.

The synthetic set below (source en, evaluated in en/zh/fr, 12 records) is built so every
outcome is certain whatever the bootstrap draws:

    ES   memla 1 everywhere; rome 1 in en only; ft_l 0        -> others: MEMLA beats rome (+100, zero width)
                                                                edit→edit: memla = rome -> no difference
    PS   memla 0 everywhere; rome 1 everywhere; ft_l 0        -> MEMLA loses to rome in both views
    NS   memla 1,0,1,0...; rome 0,1,0,1...; ft_l 0.25         -> differences ±1, mean 0 -> no difference
    MQ   0 for everyone                                        -> no difference; "same mean" note
    loc_acc  rome 0 everywhere, everyone else 1               -> the PS loss is shown with rome's
                                                                locality change (-100) next to MEMLA's (0)

``memla_no_lse`` (kind memla) scores 1 on everything: as a MEMLA variant it must never be
picked as the best baseline. The baselines ran in run dir ``runs/base`` on a GPU, MEMLA in
``runs/memla`` on a CPU; a second edit language (zh) has MEMLA rows only.
"""
from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Optional

import pytest

from memla_mkeb.compare import LOSS, TIE, WIN
from memla_mkeb.findings import findings_section
from memla_mkeb.report import Invocation, ReportError, main, write_report

REPO = Path(__file__).resolve().parents[1]
RESULTS_DOC = REPO / "docs" / "RESULTS.md"
#: the refined preset's one test comparison: the first 30 en test records of the second series
PRESET_TEST_REPORT = REPO / "benchmarks" / "mkeb" / "results" / "protocol2" / "report_en30.md"
#: issue 31's reports (sequential and batch edits, edits stated in de/ru/ja), once committed
ISSUE31_REPORTS = [REPO / "benchmarks" / "mkeb" / "results" / name
                   for name in ("sequential_report.md", "batch_report.md", "de_ru_ja/report.md")]

LANGS = ("en", "zh", "fr")
N = 12
KINDS = {"unedited": "unedited", "memla": "memla", "memla_no_lse": "memla", "rome": "easyedit", "ft_l": "easyedit"}
OVERRIDES = {"memla_no_lse": {"use_language_specific": False}}
HW = {"base": "GPU: test-gpu (1 device)", "memla": "CPU: test-cpu (2 cores, 2 torch threads)"}


# --------------------------------------------------------------------------- the synthetic results


def _scores(method: str, source: str, i: int) -> dict[str, dict[str, float]]:
    out = {}
    for lang in LANGS:
        home = lang == source
        es = {"memla": 1.0, "memla_no_lse": 1.0, "rome": float(home), "ft_l": 0.0, "unedited": 0.0}[method]
        ps = {"memla": 0.0, "memla_no_lse": 1.0, "rome": 1.0, "ft_l": 0.0, "unedited": 0.0}[method]
        ns = {"memla": float(i % 2 == 0), "memla_no_lse": 1.0, "rome": float(i % 2 == 1), "ft_l": 0.25,
              "unedited": 0.5}[method]
        out[lang] = {"ES": es, "PS": ps, "NS": ns, "MQ": 0.0,
                     "rel_acc": es, "gen_acc": ps, "loc_acc": float(method != "rome"), "port_acc": 0.0}
    return out


def _row(method: str, source: str, i: int, hardware: str) -> dict[str, Any]:
    return {"key": f"{method}|{source}|{i}", "method": method, "kind": KINDS[method], "source": source,
            "record_id": str(i), "record_index": i, "status": "ok", "error": None, "seed": 7,
            "cfg_id": f"cfg-{method}", "hardware": hardware, "edit_s": 1.0 + i, "eval_s": 0.5,
            "restore": {"checked": 0 if method == "unedited" else 4, "restored": 4},
            "scores": _scores(method, source, i)}


def _plan(methods: list[str]) -> dict[str, Any]:
    return {"data_ids": None, "data_meta": {}, "data_path": "/somewhere/tiny_mkeb.json",
            "methods": [{"name": m, "kind": KINDS[m], "overrides": OVERRIDES.get(m, {})} for m in methods],
            "model": {"name": "tiny", "name_or_path": "tiny-model", "device": "cpu", "dtype": None}}


def make_runs(root: Path) -> list[Path]:
    """Two run dirs under ``root/runs``: baselines (+ unedited) on a GPU, MEMLA variants on a CPU."""
    layout = {"base": (["unedited", "rome", "ft_l"], ["en"]), "memla": (["memla", "memla_no_lse"], ["en", "zh"])}
    dirs = []
    for name, (methods, sources) in layout.items():
        d = root / "runs" / name
        d.mkdir(parents=True)
        rows = [_row(m, s, i, HW[name]) for m in methods for s in sources for i in range(N)
                if not (m == "memla_no_lse" and s == "zh")]
        (d / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), "utf-8")
        (d / "plan.json").write_text(json.dumps(_plan(methods), indent=2, sort_keys=True), "utf-8")
        dirs.append(d)
    return dirs


# --------------------------------------------------------------------------- the regeneration check


def _files_dir(md: Path) -> Path:
    return md.parent / (md.stem + "_files")


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()} if d.is_dir() else {}


def _root_of(md: Path, out: str) -> Path:
    """The directory the recorded command ran from: where ``out`` names ``md``."""
    target = md.resolve()
    for cand in [target.parent, *target.parent.parents]:
        if (cand / out).resolve() == target:
            return cand
    raise ReportError(f"{md}: the Regenerate line writes {out!r}, which cannot name this file")


def check_regenerates(md_path: Path, tmp: Path) -> list[str]:
    """Rerun the report's recorded ``Regenerate:`` command into ``tmp``; list every byte difference.

    The command's paths are relative to the dir it ran from (found from ``--out``), so this works
    from any current dir. The markdown is written under ``tmp`` with the same file name, so its
    ``<stem>_files/`` links are the same; the printed command is the recorded one.
    """
    md_path = Path(md_path)
    text = md_path.read_bytes()
    inv = Invocation.from_markdown(text.decode("utf-8"))
    root = _root_of(md_path, inv.out_path())
    tmp.mkdir(parents=True, exist_ok=True)
    new_md = write_report([root / d for d in inv.run_dirs], tmp / md_path.name, n_boot=inv.n_boot, seed=inv.seed,
                          plots=inv.plots, common_records=inv.common_records, first=inv.first, shown=inv)
    diffs = []
    new_text = new_md.read_bytes()
    if new_text != text:
        lines = list(difflib.unified_diff(text.decode("utf-8", "replace").splitlines(),
                                          new_text.decode("utf-8", "replace").splitlines(),
                                          f"{md_path.name} (committed)", f"{md_path.name} (regenerated)", lineterm="",
                                          n=0))
        diffs.append(f"{md_path.name} differs:\n" + "\n".join(lines[:40]))
    old, new = _tree(_files_dir(md_path)), _tree(_files_dir(new_md))
    prefix = _files_dir(md_path).name
    for name in sorted(set(old) | set(new)):
        if name not in new:
            diffs.append(f"{prefix}/{name}: committed but not produced by the command")
        elif name not in old:
            diffs.append(f"{prefix}/{name}: produced by the command but not committed")
        elif old[name] != new[name]:
            diffs.append(f"{prefix}/{name}: bytes differ")
    return diffs


# --------------------------------------------------------------------------- findings


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fake checkout with the two run dirs and docs/RESULTS.md generated from it, as the lead would."""
    root = tmp_path / "repo"
    make_runs(root)
    monkeypatch.chdir(root)
    assert main(["runs/base", "runs/memla", "--out", "docs/RESULTS.md", "--bootstrap", "300", "--seed", "3"]) == 0
    return root


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start:] if end < 0 else md[start:end]


def test_findings_classify_wins_losses_and_ties(repo):
    md = (repo / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    f = _section(md, "Findings")
    en = next(p for p in f.split("\n\n") if p.startswith("**Edit language en.**"))
    # a clear win, a clear loss (both views), named with the best baseline and the interval in points
    assert "MEMLA beats rome on ES others by 100.0 points [+100.0, +100.0]." in en
    assert ("MEMLA loses to rome on PS edit→edit by 100.0 points [-100.0, -100.0] and PS others by 100.0 points "
            "[-100.0, -100.0].") in en
    # the baseline MEMLA loses to is shown with its locality cost, against the unedited model
    assert ("Locality of the same edits: loc_acc (the share of neighbourhood answer tokens still predicted as the "
            "unedited model predicts them) changes against the unedited model by -100.0 [-100.0, -100.0] edit→edit "
            "and -100.0 [-100.0, -100.0] others for rome and +0.0 [+0.0, +0.0] edit→edit and +0.0 [+0.0, +0.0] "
            "others for MEMLA.") in en
    assert en.count("Locality of the same edits") == 1  # ES is a win: its baseline is not repeated
    # the rest is inconclusive and counted, the all-zero metric noted
    assert "No difference the intervals support on 5 of 8 comparisons (ES edit→edit, NS edit→edit, NS others, " \
           "MQ edit→edit, MQ others)." in en
    assert "same mean in both views on MQ (0.0)" in en
    assert "Baselines compared: rome, ft_l" in en and "each interval is paired over 12 records" in en
    # a MEMLA variant is never the best baseline, the unedited model neither
    assert "memla_no_lse" not in en and "unedited" not in f.replace("the unedited model", "")
    assert "memla_no_lse" not in f[f.index("**The paper's claim.**"):]
    # an edit language without baselines says so
    assert "**Edit language zh.** The comparison with the best baseline is not available: there are no baseline " \
           "rows." in f
    # the paper's claim, per metric on the "others" view, and the summary
    claim = f[f.index("**The paper's claim.**"):]
    assert "arXiv 2406.11566" in claim
    assert ("- edit language en: ES supported (+100.0 [+100.0, +100.0] vs rome, n = 12); "
            "PS contradicted (-100.0 [-100.0, -100.0] vs rome, n = 12); NS not resolved (") in claim
    assert "MQ not resolved (+0.0 [+0.0, +0.0] vs rome, n = 12)" in claim
    assert "- edit language zh: not available" in claim
    assert ("of 4 (edit language, metric) pairs tested, the claim is supported on 1, contradicted on 1 and not "
            "resolved on 2. Supported: ES (en). Contradicted: PS (en).") in claim
    # the table below says the same as the words (one computation feeds both)
    assert "| ES | others | rome | 100.0 | 0.0 | +100.0 [+100.0, +100.0] | 12 | MEMLA higher |" in md
    assert "| PS | others | rome | 0.0 | 100.0 | -100.0 [-100.0, -100.0] | 12 | MEMLA lower |" in md
    assert "| NS | others | rome | 50.0 | 50.0 | +0.0 [" in md
    # Findings come before the detailed tables
    assert md.index("## Findings") < md.index("## Edit language en")


def test_variants_are_compared_with_memla_paired_by_record(repo):
    md = (repo / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    table = md[md.index("### MEMLA variants minus full MEMLA (edit language en)"):]
    # memla_no_lse - memla: ES 1 - 1 = 0; PS 1 - 0 = +100; NS 1 - (1, 0, 1, 0, ...) -> mean +50; MQ 0 - 0
    assert ("| memla_no_lse | use_language_specific=false | 12 | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | "
            "+100.0 [+100.0, +100.0] | +100.0 [+100.0, +100.0] | +50.0 [") in table
    # zh has no variant rows: no table for it
    assert "### MEMLA variants minus full MEMLA (edit language zh)" not in md
    f = _section(md, "Findings")
    para = next(p for p in f.split("\n\n") if p.startswith("**MEMLA variants, edit language en.**"))
    assert ("Each variant minus full MEMLA on ES, PS, NS, MQ, rel_acc, gen_acc, loc_acc, port_acc (edit→edit and "
            "others), paired over the 12 records both have") in para
    assert ("`memla_no_lse` (use_language_specific=false) is higher on PS edit→edit by 100.0 points "
            "[+100.0, +100.0], PS others by 100.0 points [+100.0, +100.0], NS edit→edit by 50.0 points [") in para
    # gen_acc follows PS here: +100 in both views; the other 10 comparisons differ by 0
    assert "gen_acc edit→edit by 100.0 points [+100.0, +100.0] and gen_acc others by 100.0 points" in para
    assert para.endswith("; no difference the intervals support on the other 10.")
    assert "EasyEdit token-accuracy family:\n\n| variant | changes | pairs | rel_acc edit→edit" in table
    # the variants come before the paper's claim, and the CSV holds every metric (token-accuracy family too)
    assert f.index("**MEMLA variants") < f.index("**The paper's claim.**")
    csv_text = (repo / "docs" / "RESULTS_files" / "variants_vs_memla.csv").read_text(encoding="utf-8")
    assert csv_text.count("memla_no_lse") == 16 and "en,memla_no_lse,use_language_specific=false,PS,e2e,12,1.0000" in csv_text


def test_variant_on_fewer_records_is_paired_over_the_shared_ones():
    from memla_mkeb.ablations import variants_paragraph
    from memla_mkeb.compare import LOWER, UNRESOLVED, compare_variants

    kinds = {"memla": "memla", "memla_scale0p3": "memla"}
    memla = {str(i): 1.0 for i in range(10)}
    values = {("memla", "en", "ES", "e2e"): memla, ("memla", "en", "ES", "others"): memla,
              # the variant ran on the first 4 records only: 0 on each -> -100 over 4 pairs
              ("memla_scale0p3", "en", "ES", "e2e"): {str(i): 0.0 for i in range(4)},
              ("memla_scale0p3", "en", "ES", "others"): {str(i): float(i % 2) for i in range(4)}}
    comps = compare_variants("en", ["memla", "memla_scale0p3"], kinds, ["ES"], values, seed=0, n_boot=200)
    assert [(c.view, c.diff.n, round(c.diff.mean, 3)) for c in comps] == [("e2e", 4, -1.0), ("others", 4, -0.5)]
    assert comps[0].outcome == LOWER and comps[1].outcome in (LOWER, UNRESOLVED)
    text = variants_paragraph("en", comps, {"memla_scale0p3": "apply_scale=0.3"})
    assert "`memla_scale0p3` (apply_scale=0.3) is lower on ES edit→edit by 100.0 points [-100.0, -100.0]" in text
    # without MEMLA rows there is nothing to compare with
    assert compare_variants("en", ["memla_scale0p3"], kinds, ["ES"], values, seed=0, n_boot=200) == []


def test_findings_without_memla_or_baselines_say_not_available():
    present = {"en": ["unedited", "rome"]}
    lines = findings_section(["en"], present, {"unedited": "unedited", "rome": "easyedit"}, {"en": []}, {}, ["ES"])
    text = "\n".join(lines)
    assert "**Edit language en.** The comparison with the best baseline is not available: there are no `memla` rows." in text
    assert "The comparison is not available: there are no `memla` rows." in text
    lines = findings_section(["en"], {"en": ["memla"]}, {"memla": "memla"}, {"en": []}, {}, ["ES"])
    assert "The comparison is not available: there are no baseline rows." in "\n".join(lines)


def test_locality_of_a_lost_comparison_needs_changes_against_the_unedited_model():
    from memla_mkeb.compare import Comparison
    from memla_mkeb.stats import Estimate

    e = Estimate(12, -0.5, -0.7, -0.3)
    loss = Comparison("en", "ES", "others", "lora", e, e, e, has_interval=True)
    kinds = {"memla": "memla", "lora": "easyedit"}
    args = (["en"], {"en": ["memla", "lora"]}, kinds, {"en": [loss]})
    ests = {(m, "en", "ES", v): Estimate(12, 0.5, 0.4, 0.6) for m in ("memla", "lora") for v in ("e2e", "others")}
    # no deltas (no unedited rows): the loss is stated without a locality sentence
    assert "Locality" not in "\n".join(findings_section(*args, ests, ["ES"]))
    deltas = {(m, "en", "loc_acc", v): Estimate(12, d, d - 0.1, d + 0.1)
              for m, d in (("memla", -0.2), ("lora", -0.9)) for v in ("e2e", "others")}
    text = "\n".join(findings_section(*args, ests, ["ES"], deltas=deltas))
    assert ("by -90.0 [-100.0, -80.0] edit→edit and -90.0 [-100.0, -80.0] others for lora and -20.0 [-30.0, -10.0] "
            "edit→edit and -20.0 [-30.0, -10.0] others for MEMLA.") in text
    # a single record gives no interval: nothing is shown rather than a bare mean
    deltas[("memla", "en", "loc_acc", "e2e")] = Estimate(1, -0.2, -0.2, -0.2)
    assert "Locality" not in "\n".join(findings_section(*args, ests, ["ES"], deltas=deltas))


def test_comparison_outcome_needs_an_interval():
    from memla_mkeb.compare import Comparison
    from memla_mkeb.stats import Estimate

    def cmp(lo: Optional[float], hi: Optional[float], n: int = 5, ok: bool = True) -> Comparison:
        e = Estimate(n, 0.1, lo, hi)
        return Comparison("en", "ES", "others", "rome", e, e, e, has_interval=ok)

    assert cmp(0.01, 0.2).outcome == WIN and cmp(-0.3, -0.01).outcome == LOSS
    assert cmp(0.0, 0.2).outcome == TIE and cmp(-0.1, 0.0).outcome == TIE
    assert cmp(0.1, 0.1, n=1, ok=False).outcome is None


# --------------------------------------------------------------------------- runs, hardware, the command


def test_header_names_hardware_per_run_and_the_command(repo):
    md = (repo / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert ("Regenerate: `memla-mkeb-report runs/base runs/memla --out docs/RESULTS.md --bootstrap 300 --seed 3`"
            in md)
    runs = _section(md, "Runs and hardware")
    assert f"| `runs/base` | unedited, rome, ft_l | en | 12 | 36 | {HW['base']} |" in runs
    assert f"| `runs/memla` | memla, memla_no_lse | en zh | 12 | 36 | {HW['memla']} |" in runs
    assert "- Run directories: `runs/base`, `runs/memla`" in md
    # nothing machine-specific: no absolute path of this checkout anywhere in the text
    assert str(repo) not in md and "/somewhere" not in md
    # links to the plots are relative to the markdown file
    assert "](RESULTS_files/languages_en_baselines.png)" in md and "](RESULTS_files/at_a_glance.png)" in md
    # a parent dir searched recursively: each row is named by the run dir it was found in
    main(["runs", "--out", "docs/parent.md", "--no-plots"])
    runs = _section((repo / "docs" / "parent.md").read_text(encoding="utf-8"), "Runs and hardware")
    assert "| `runs/base` | unedited, rome, ft_l |" in runs and "| `runs/memla` | memla, memla_no_lse |" in runs


def test_absolute_paths_below_the_cwd_are_printed_relative(repo, tmp_path):
    main([str(repo / "runs" / "base"), str(repo / "runs" / "memla"), "--out", str(repo / "docs" / "X.md"),
          "--no-plots"])
    md = (repo / "docs" / "X.md").read_text(encoding="utf-8")
    assert "Regenerate: `memla-mkeb-report runs/base runs/memla --out docs/X.md --no-plots`" in md
    inv = Invocation.from_markdown(md)
    assert inv == Invocation(("runs/base", "runs/memla"), "docs/X.md", 2000, 0, False)
    assert Invocation.from_argv(inv.argv()) == inv
    with pytest.raises(ReportError, match="no 'Regenerate"):
        Invocation.from_markdown("# a report\n")


# --------------------------------------------------------------------------- regeneration


def test_check_regenerates_passes_on_an_untouched_report(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the check must not depend on the current dir
    assert check_regenerates(repo / "docs" / "RESULTS.md", tmp_path / "regen") == []
    assert (tmp_path / "regen" / "RESULTS_files" / "summary.csv").is_file()


def test_check_regenerates_reports_each_kind_of_drift(repo, tmp_path):
    md = repo / "docs" / "RESULTS.md"
    files = repo / "docs" / "RESULTS_files"
    md.write_text(md.read_text(encoding="utf-8").replace("MEMLA beats rome", "MEMLA crushes rome"), encoding="utf-8")
    (files / "summary.csv").write_bytes((files / "summary.csv").read_bytes() + b"x\n")
    (files / "stale.csv").write_text("old\n", encoding="utf-8")
    (files / "languages_en_baselines.png").unlink()
    diffs = check_regenerates(md, tmp_path / "regen")
    assert any(d.startswith("RESULTS.md differs") and "MEMLA crushes rome" in d for d in diffs)
    assert "RESULTS_files/summary.csv: bytes differ" in diffs
    assert "RESULTS_files/stale.csv: committed but not produced by the command" in diffs
    assert "RESULTS_files/languages_en_baselines.png: produced by the command but not committed" in diffs
    # new results rows change the report too
    with (repo / "runs" / "base" / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(_row("rome", "zh", 0, HW["base"]), sort_keys=True) + "\n")
    assert any("RESULTS.md differs" in d for d in check_regenerates(md, tmp_path / "regen2"))


def test_docs_results_md_regenerates():
    """The published results (and the first series' page, once it moved to RESULTS_v1.md), and the refined
    preset's one test comparison, are exactly what their recorded commands produce from the committed runs."""
    if not RESULTS_DOC.is_file():
        pytest.fail(f"{RESULTS_DOC.relative_to(REPO)} is missing: generate it with memla-mkeb-report from the "
                    "committed run dirs (e.g. `memla-mkeb-report benchmarks/mkeb/results/en --out docs/RESULTS.md`, "
                    "run from the repository root) and commit it with its RESULTS_files/")
    import tempfile

    pages = [p for p in (RESULTS_DOC, RESULTS_DOC.with_name("RESULTS_v1.md"), PRESET_TEST_REPORT, *ISSUE31_REPORTS)
             if p.is_file()]
    for page in pages:
        with tempfile.TemporaryDirectory() as tmp:
            diffs = check_regenerates(page, Path(tmp))
        assert not diffs, f"{page.relative_to(REPO)} does not match its Regenerate command:\n" + "\n".join(diffs)


def test_published_runs_keep_one_memla_hparams_file():
    """run.sh pins MEMLA's hparams as the series began; each committed run dir's MEMLA variants hashed that content.

    A run dir refuses rows made with other settings, so a changed pin would stop the series from resuming.
    """
    from memla_mkeb.settings import file_sha256

    results = REPO / "benchmarks" / "mkeb" / "results"
    script = (results / "run.sh").read_text(encoding="utf-8")
    assert 'MEMLA_HP="$R/hparams/MEMLA/qwen2.5-0.5b.yaml"' in script
    pinned = file_sha256(results / "hparams" / "MEMLA" / "qwen2.5-0.5b.yaml")[:16]
    checked = 0
    for name in ("en", "zh_fr", "ablations"):
        plan = results / name / "plan.json"
        if not plan.is_file():
            continue
        methods = json.loads(plan.read_text(encoding="utf-8"))["settings"]["methods"]
        for method, spec in methods.items():
            if spec["kind"] == "memla":
                assert spec["hparams"] == pinned, (name, method)
                checked += 1
    assert checked >= 1


def test_second_series_runs_use_its_pinned_hparams():
    """protocol2/run.sh pins every method's hparams before the first row; each run dir's plan hashed those files.

    The pinned files also hold the same settings as the repository's files (comments may differ), so the
    published series edits at the operating points the repository ships.
    """
    import yaml
    from memla_mkeb.settings import file_sha256

    series = REPO / "benchmarks" / "mkeb" / "results" / "protocol2"
    pinned = sorted((series / "hparams").glob("*/*.yaml"))
    assert pinned, "protocol2/run.sh pin has not been run"
    for f in pinned:
        shipped = REPO / "hparams" / f.parent.name / f.name
        assert yaml.safe_load(f.read_text("utf-8")) == yaml.safe_load(shipped.read_text("utf-8")), f
    hashes = {file_sha256(f)[:16]: f for f in pinned}
    expected = {"memla": "MEMLA/qwen2.5-0.5b.yaml", "memla_refined": "MEMLA/qwen2.5-0.5b-refined.yaml",
                "rome": "ROME/qwen2.5-0.5b.yaml", "memit": "MEMIT/qwen2.5-0.5b.yaml"}
    checked = 0
    for plan in sorted(series.glob("*/plan*.json")):
        for method, spec in json.loads(plan.read_text(encoding="utf-8"))["settings"]["methods"].items():
            if spec["hparams"] is None:
                continue
            assert spec["hparams"] in hashes, (plan.name, method)
            if method in expected:
                assert hashes[spec["hparams"]] == series / "hparams" / expected[method], (plan, method)
            checked += 1
    assert checked >= 1 or not list(series.glob("*/plan*.json"))
    # the operating points the report cites name these files by the same hashes
    points = json.loads((series / "operating_points.json").read_text(encoding="utf-8"))["methods"]
    assert {"memla", "memla_refined", "rome", "memit", "mend", "ft_l", "ft_m", "lora", "ike"} <= set(points)
    for method, entry in points.items():
        assert hashes[entry["hparams_sha"]] == REPO / entry["hparams"], method


def _numbers_in(prose: str) -> list[str]:
    """The figures a piece of README prose states; link targets and code spans are not findings."""
    prose = re.sub(r"\]\([^)]*\)|\(docs/[^)]*\)|`[^`]*`", "", prose)
    return re.findall(r"(?<![\w.])[+-]?\d+(?:\.\d+)?(?![\w.])", prose)


def test_readme_results_summary_holds_only_numbers_of_the_page():
    """The front page's results summary says nothing the published page does not: each number in it is there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- results-summary", "<!-- /results-summary -->"
    assert start in readme and end in readme, "README.md lost its results-summary markers"
    summary = readme.split(start, 1)[1].split(end, 1)[0].split("-->", 1)[1]
    page = RESULTS_DOC.read_text(encoding="utf-8")
    numbers = _numbers_in(summary)
    assert numbers, "the summary states no figure at all"
    missing = [x for x in numbers if x not in page]
    assert not missing, f"README's results summary has numbers docs/RESULTS.md does not: {missing}"


def test_readme_figure_blocks_hold_only_numbers_of_their_reports():
    """Each ``<!-- figures-from: REPORT ... -->`` block of the README states only figures its reports print.

    The reports are committed and regenerate byte for byte (test_docs_results_md_regenerates), so every
    figure such a block quotes traces back to committed result rows.
    """
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- figures-from: ([^>]*?) -->(.*?)<!-- /figures-from -->", readme, flags=re.S)
    assert blocks, "README.md has no figures-from block (the sequential and batch results)"
    for sources, body in blocks:
        paths = [REPO / s for s in sources.split()]
        absent = [str(p.relative_to(REPO)) for p in paths if not p.is_file()]
        assert not absent, f"a README figures-from block names reports that are not committed: {absent}"
        assert set(paths) <= set(ISSUE31_REPORTS), f"add {sources} to ISSUE31_REPORTS so that they regenerate"
        pages = "\n".join(p.read_text(encoding="utf-8") for p in paths)
        numbers = _numbers_in(body)
        assert numbers, f"the README block from {sources} states no figure at all"
        missing = [x for x in numbers if x not in pages]
        assert not missing, f"README's block from {sources} has numbers its reports do not: {missing}"
