"""``memla-mkeb-convert``: BMIKE-53 files (or a real MKEB file) -> MKEB JSON.

BMIKE-53 ships one JSON list per language (``<split>_test_<lang>.json``); each item is
``{"en": {...}, "<lang>": {...}}`` with ``case_id, subject, src, rephrase, old, alt, loc,
loc_ans, port, port_ans`` (zsRE has no ``old``). Items are aligned across files by
``case_id``. Mapping: prompt = ``src`` with the subject replaced by ``{}``, target_true =
``old``, target_new = ``alt``, paraphrase = ``rephrase``, neighbourhood = ``loc``/``loc_ans``,
multi-hop = ``port``/``port_ans``.

Honest accounting: per language we count questions whose subject had to be matched
case-insensitively and questions the subject cannot be cut out of (kept, flagged
``has_subject_slot=false``); records missing a language or a required field are dropped with
the reason; metrics the split cannot support are written to the ``.meta.json`` sidecar.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from memla_plugin.errors import DataValidationError, MEMLAError
from memla_plugin.languages import in_mkeb_order

from .loader import meta_path, read_json_list
from .schema import LANGS, EditFact, MKEBRecord
from .validate import collect_problems, raise_if_problems

_FILE_RE = re.compile(r"^(?P<split>.+?)_(?P<lang>[a-z]{2,3}(?:-[a-z]{2,4})?)\.json$")
REQUIRED = ("subject", "src", "alt", "rephrase", "loc", "loc_ans")

BMIKE_SOURCE = {
    "dataset": "BMIKE-53",
    "citation": 'Nie et al., "BMIKE-53: Investigating Cross-Lingual Knowledge Editing with In-Context '
    'Learning", arXiv 2406.17764 (ACL 2025)',
    "url": "https://github.com/ercong21/MultiKnow",
    "license": "MIT",
}


def _count(header: str = "", width: int = 0, legend: str = "") -> Any:
    """A per-language counter; ``header`` (column ``width``) and ``legend`` show it in the report table."""
    return field(default=0, metadata={"header": header, "width": width, "legend": legend})


@dataclass
class LangStats:
    """Per-language templating counts (those with a header are columns of the printed report)."""

    templated: int = _count("templated", 10, "subject found verbatim in the question and replaced by {}")
    case_adjusted: int = _count(
        "case-adj", 10, "subject found only case-insensitively; the subject takes the question's spelling")
    untemplatable: int = _count(
        "no-slot", 9, "subject not in the question (inflected/transliterated): kept with the full question,\n"
        "           has_subject_slot=false (usable by MEMLA/FT/LoRA; ROME/MEMIT need the subject position)")
    multi_occurrence: int = _count()
    missing_old: int = _count(
        "no-old", 8, "no original answer (`old`): ES/PS cannot be computed for that language of the record")
    missing_multi_hop: int = _count("no-mhop", 9, "no multi-hop question/answer: the record has no MQ")


def _columns() -> list[Any]:
    return [f for f in fields(LangStats) if f.metadata["header"]]


@dataclass
class ConversionReport:
    """What a conversion did; serialised into the sidecar and printed."""

    split: str
    langs: list[str]
    files: dict[str, str]
    n_input: int = 0
    n_output: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)
    per_lang: dict[str, LangStats] = field(default_factory=dict)
    en_conflicts: int = 0
    unavailable_metrics: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        reasons = Counter(d["reason"] for d in self.dropped)
        return {
            "format": "mkeb",
            "source": dict(BMIKE_SOURCE, split=self.split, files=self.files),
            "langs": self.langs,
            "n_input_records": self.n_input,
            "n_records": self.n_output,
            "dropped": self.dropped,
            "dropped_by_reason": dict(reasons),
            "per_lang": {lang: vars(s) for lang, s in self.per_lang.items()},
            "en_conflicts": self.en_conflicts,
            "unavailable_metrics": self.unavailable_metrics,
            "notes": self.notes,
        }

    def text(self) -> str:
        """Human-readable summary (also the shipped conversion report)."""
        lines = [
            f"BMIKE-53 split {self.split!r}: {self.n_input} input records -> {self.n_output} MKEB records "
            f"in {len(self.langs)} languages ({' '.join(self.langs)})",
        ]
        if self.dropped:
            lines.append(f"dropped {len(self.dropped)} record(s):")
            lines += [f"  case_id {d['case_id']}: {d['reason']}" for d in self.dropped]
        else:
            lines.append("dropped 0 records")
        lines.append("")
        cols = _columns()
        head = f"{'lang':<5}" + "".join(f"{c.metadata['header']:>{c.metadata['width']}}" for c in cols)
        lines += [head, "-" * len(head)]
        for lang in self.langs:
            s = self.per_lang[lang]
            lines.append(f"{lang:<5}" + "".join(f"{getattr(s, c.name):>{c.metadata['width']}}" for c in cols))
        lines.append("")
        lines += [f"{c.metadata['header'] + ':':<11}{c.metadata['legend']}" for c in cols]
        if self.en_conflicts:
            lines.append(f"en parts differing between language files: {self.en_conflicts} (the first file's was kept)")
        if self.unavailable_metrics:
            lines.append("unavailable metrics: " + "; ".join(f"{k}: {v}" for k, v in self.unavailable_metrics.items()))
        else:
            lines.append("unavailable metrics: none (all of ES, PS, NS, MQ can be computed)")
        lines += self.notes
        return "\n".join(lines)


LANG_ALIASES = {"zh-cn": "zh", "zh_cn": "zh", "zh-hans": "zh"}


def find_files(src: Path, langs: Sequence[str] | None, split: str | None) -> tuple[str, dict[str, Path | None]]:
    """Map language -> file in ``src``; the split name is the common file-name prefix.

    English needs no file of its own: every BMIKE-53 item carries its ``en`` part, so
    ``en`` maps to ``None`` when no English file exists.
    """
    if not src.is_dir():
        raise DataValidationError(f"--src {src}: not a directory")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(src.glob("*.json")):
        m = _FILE_RE.match(p.name)
        if m and (split is None or m["split"] == split or m["split"] == f"{split}_test"):
            lang = LANG_ALIASES.get(m["lang"], m["lang"])
            found.setdefault(lang, {})[m["split"]] = p
    if not found:
        raise DataValidationError(f"--src {src}: no BMIKE-53 files named <split>_<lang>.json")
    want = list(langs) if langs else in_mkeb_order(set(found) | {"en"})
    want = [lang for lang in LANGS if lang in want] + [lang for lang in want if lang not in LANGS]
    files: dict[str, Path | None] = {}
    splits: set[str] = set()
    for lang in want:
        options = found.get(lang, {})
        if not options and lang == "en":
            files[lang] = None
            continue
        if not options:
            raise DataValidationError(f"--src {src}: no file for language {lang!r} (expected <split>_{lang}.json)")
        if len(options) > 1:
            raise DataValidationError(
                f"--src {src}: several files for {lang!r} ({', '.join(p.name for p in options.values())}); pass --split"
            )
        (name, path), = options.items()
        files[lang] = path
        splits.add(name)
    if len(splits) > 1:
        raise DataValidationError(f"--src {src}: files of several splits ({', '.join(sorted(splits))}); pass --split")
    if not splits:
        raise DataValidationError(f"--src {src}: no file for any language other than en")
    name = splits.pop()
    return (name[: -len("_test")] if name.endswith("_test") else name), files


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _filled(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, str) and v.strip() for v in value)
    return isinstance(value, str) and value.strip() != ""


def template(question: str, subject: str, stats: LangStats) -> EditFact:
    """Cut the subject out of the question; count how it went."""
    if subject in question:
        stats.templated += 1
        if question.count(subject) > 1:
            stats.multi_occurrence += 1
        return EditFact(prompt=question.replace(subject, "{}", 1), subject=subject, target_new="")
    m = re.search(re.escape(subject), question, flags=re.IGNORECASE)
    if m:
        stats.case_adjusted += 1
        return EditFact(prompt=question[: m.start()] + "{}" + question[m.end():], subject=m.group(0), target_new="")
    stats.untemplatable += 1
    return EditFact(prompt=question, subject=subject, target_new="", has_subject_slot=False)


def _collect_parts(files: dict[str, Path | None], report: ConversionReport) -> tuple[dict[Any, dict[str, Any]], list[Any]]:
    """Every item's per-language parts, aligned by ``case_id``, and the ids in first-seen order."""
    parts: dict[Any, dict[str, dict[str, Any]]] = {}
    order: list[Any] = []
    en_seen: dict[Any, str] = {}
    for lang, path in files.items():
        if path is None:
            continue
        for pos, item in enumerate(read_json_list(path, str(path))):
            if not isinstance(item, dict) or not isinstance(item.get("en", item.get(lang)), dict):
                raise DataValidationError(f"{path.name}: item #{pos} is not an object with an 'en' or {lang!r} part")
            base = item.get("en") or item.get(lang)
            cid = base.get("case_id")
            if cid is None:
                raise DataValidationError(f"{path.name}: item #{pos}: field 'case_id' missing")
            if cid not in parts:
                parts[cid] = {}
                order.append(cid)
            if isinstance(item.get("en"), dict):
                key = json.dumps(item["en"], sort_keys=True, ensure_ascii=False)
                if cid in en_seen and en_seen[cid] != key:
                    report.en_conflicts += 1
                en_seen.setdefault(cid, key)
                parts[cid].setdefault("en", item["en"])
            if lang == "en" and pos == 0:
                extra = sorted(k for k in item if k != "en")
                if extra:
                    report.notes.append(
                        f"{path.name} items also carry {', '.join(extra)} part(s); ignored, en is read from the 'en' parts"
                    )
            if lang != "en" and isinstance(item.get(lang), dict):
                own = item[lang].get("case_id", cid)
                if own != cid:
                    raise DataValidationError(
                        f"{path.name}: item #{pos}: case_id {own} in {lang!r} part differs from en part ({cid})"
                    )
                parts[cid][lang] = item[lang]
    return parts, order


def _drop_reason(per: dict[str, Any], langs: Sequence[str]) -> str | None:
    """Why an item cannot become a record (a language or required field missing), or ``None``."""
    missing = [lang for lang in langs if lang not in per]
    if missing:
        return f"missing language(s): {', '.join(missing)}"
    empty = [f"{lang}.{f}" for lang in langs for f in REQUIRED if not _filled(per[lang].get(f))]
    if empty:
        return f"missing or empty field(s): {', '.join(empty)}"
    loc_len = [f"{lang}" for lang in langs if len(_as_list(per[lang]["loc"])) != len(_as_list(per[lang]["loc_ans"]))]
    if loc_len:
        return f"loc/loc_ans of unequal length in {', '.join(loc_len)}"
    return None


def _build_record(cid: Any, per: dict[str, Any], langs: Sequence[str], report: ConversionReport,
                  has_old: bool) -> MKEBRecord:
    """One MKEB record from an item's language parts, counting per language how templating went."""
    multi_hop = all(_filled(per[lang].get("port")) and _filled(per[lang].get("port_ans")) for lang in langs)
    rec = MKEBRecord(example_id=cid, edit={})
    for lang in langs:
        p, stats = per[lang], report.per_lang[lang]
        fact = template(p["src"], p["subject"], stats)
        fact.target_new = p["alt"]
        fact.target_true = p["old"] if _filled(p.get("old")) else None
        if fact.target_true is None and has_old:
            stats.missing_old += 1
        rec.edit[lang] = fact
        rec.paraphrase_prompts[lang] = _as_list(p["rephrase"])
        rec.neighborhood_prompts[lang] = _as_list(p["loc"])
        rec.neighborhood_answers[lang] = _as_list(p["loc_ans"])
        if multi_hop:
            rec.multi_hop_questions[lang] = _as_list(p["port"])
            rec.multi_hop_new_answer[lang] = _as_list(p["port_ans"])[0]
        else:
            stats.missing_multi_hop += 1
    return rec


def convert_bmike53(
    src: str | Path, langs: Sequence[str] | None = None, split: str | None = None
) -> tuple[list[MKEBRecord], ConversionReport]:
    """Convert a BMIKE-53 directory; returns the records and the report (nothing written)."""
    src = Path(src)
    split_name, files = find_files(src, langs, split)
    langs = list(files)
    report = ConversionReport(
        split=split_name, langs=langs, files={k: (v.name if v else "(en parts of the other files)") for k, v in files.items()}
    )
    report.per_lang = {lang: LangStats() for lang in langs}
    parts, order = _collect_parts(files, report)
    report.n_input = len(order)

    has_old = any("old" in p for per in parts.values() for lang, p in per.items() if lang in langs)
    if not has_old:
        why = "source split has no original answer (`old`), so P(target_new) > P(target_true) cannot be computed"
        report.unavailable_metrics = {"ES": why, "PS": why}

    records: list[MKEBRecord] = []
    for cid in order:
        reason = _drop_reason(parts[cid], langs)
        if reason:
            report.dropped.append({"case_id": cid, "reason": reason})
        else:
            records.append(_build_record(cid, parts[cid], langs, report, has_old))
    report.n_output = len(records)
    if not has_old:
        report.notes.append("target_true is null in every record: ES/PS are skipped; NS, MQ and the token accuracies remain.")
    raise_if_problems(collect_problems(records, langs), f"converted {split_name}")
    return records, report


def write_records(records: Sequence[MKEBRecord], out: Path) -> None:
    """One record per line inside a JSON list: valid JSON that still diffs well."""
    out.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(r.to_json(), ensure_ascii=False) for r in records)
    out.write_text("[\n" + body + "\n]\n", encoding="utf-8")


def _cmd_bmike53(args: argparse.Namespace) -> None:
    records, report = convert_bmike53(args.src, args.langs, args.split)
    out = Path(args.out)
    write_records(records, out)
    meta = report.to_json()
    meta_path(out).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    text = report.text()
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nwrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {meta_path(out).name}")


def _cmd_mkeb(args: argparse.Namespace) -> None:
    from .loader import load_mkeb

    records = load_mkeb(args.src, args.test_ids, langs=args.langs)
    out = Path(args.out)
    write_records(records, out)
    print(f"{args.src}: {len(records)} valid records in {' '.join(records[0].langs) if records else '-'}; wrote {out}")


def make_splits(
    records: Sequence[MKEBRecord], seed: int = 0, n_dev: int = 10, n_train: int = 0
) -> tuple[list[Any], list[Any], list[Any]]:
    """Fixed dev, test and train id lists (pairwise disjoint, together every record).

    All ids are shuffled with ``random.Random(seed)``. The dev subset takes the first
    ``n_dev`` shuffled records whose prompt has a subject slot in every language (so ROME and
    MEMIT can run on all of dev); of the other records, in shuffled order, the last
    ``n_train`` form the train list (text for ROME/MEMIT statistics and MEND training, never
    evaluated) and the rest the test list, so any prefix of the test list is a random sample.
    """
    import random

    if n_train < 0:
        raise DataValidationError(f"splits: n_train must be >= 0, got {n_train}")
    ids = [r.example_id for r in records]
    random.Random(seed).shuffle(ids)
    by_id = {r.example_id: r for r in records}
    dev = [i for i in ids if all(f.has_subject_slot for f in by_id[i].edit.values())][:n_dev]
    chosen = set(dev)
    rest = [i for i in ids if i not in chosen]
    if n_train >= len(rest):
        raise DataValidationError(f"splits: n_train={n_train} leaves no test record (only {len(rest)} outside dev)")
    cut = len(rest) - n_train
    return dev, rest[:cut], rest[cut:]


def _cmd_splits(args: argparse.Namespace) -> None:
    from .loader import load_mkeb

    records = load_mkeb(args.data)
    dev, test, train = make_splits(records, args.seed, args.n_dev, args.n_train)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = (
        f"# {{}} ids of {Path(args.data).name}; "
        f"memla-mkeb-convert splits --seed {args.seed} --n-dev {args.n_dev} --n-train {args.n_train}\n"
    )
    lists = {"dev": dev, "test": test, "train": train}
    for name, ids in lists.items():
        if name == "train" and not ids:
            continue
        (out / f"{name}_ids.txt").write_text(head.format(name) + "".join(f"{i}\n" for i in ids), encoding="utf-8")
    print(f"wrote {len(dev)} dev ids, {len(test)} test ids and {len(train)} train ids to {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memla-mkeb-convert", description="Convert knowledge-editing data to MKEB JSON.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bmike53", help="BMIKE-53 split (one <split>_test_<lang>.json per language)")
    b.add_argument("--src", required=True, help="folder with the per-language BMIKE-53 files")
    b.add_argument("--out", required=True, help="MKEB JSON to write (a <name>.meta.json sidecar goes beside it)")
    b.add_argument("--langs", nargs="+", default=None, help=f"languages to keep (default: all found; MKEB: {' '.join(LANGS)})")
    b.add_argument("--split", default=None, help="file-name prefix when the folder holds several splits")
    b.add_argument("--report", default=None, help="also write the printed report to this file")
    b.set_defaults(func=_cmd_bmike53)
    m = sub.add_parser("mkeb", help="validate a real MKEB file (MLiKE_v2.json) and rewrite it normalised")
    m.add_argument("--src", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--test-ids", default=None, help="keep only these ids (file, one per line)")
    m.add_argument("--langs", nargs="+", default=None)
    m.set_defaults(func=_cmd_mkeb)
    sp = sub.add_parser("splits", help="write fixed dev_ids.txt / test_ids.txt / train_ids.txt for an MKEB file")
    sp.add_argument("--data", required=True)
    sp.add_argument("--out-dir", required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--n-dev", type=int, default=10)
    sp.add_argument("--n-train", type=int, default=200, help="held-out records for statistics/MEND training (0: none)")
    sp.set_defaults(func=_cmd_splits)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; bad input gives a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MEMLAError as exc:
        first, *rest = str(exc).splitlines()
        print(f"memla-mkeb-convert: error: {first}", file=sys.stderr)
        for line in rest:
            print(line, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"memla-mkeb-convert: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
