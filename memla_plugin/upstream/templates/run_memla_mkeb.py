"""Cross-lingual knowledge editing with MEMLA on MKEB-format data.

Each record is edited in one language (``--edit_lang``) and the edit is evaluated in every
language of the record with EasyEdit's own teacher-forced metrics, one entry per language:

* ``{lang}_reliability``: the edit prompt in ``lang`` -> ``target_new`` in ``lang``;
* ``{lang}_generality``: the paraphrases in ``lang`` -> ``target_new`` in ``lang``;
* ``{lang}_locality``: the neighbourhood prompts in ``lang`` keep their pre-edit predictions;
* ``{lang}_portability``: multi-hop questions in ``lang`` -> the new answer (when the data has them).

MEMLA finds the fact's knowledge neurons in each language of ``id_langs`` (hparams) from the
``languages`` entry of the request, so the records should carry those languages (en, zh, fr
by default). Records are edited one at a time and the model is restored after each.

MKEB record (one per list item, https://arxiv.org/abs/2406.11566):
    {"example_id": ..., "edit": {"<lang>": {"prompt": "... {} ...", "subject": ..., "target_new": ...,
     "target_true": ...}}, "paraphrase_prompts": {"<lang>": [...]}, "neighborhood_prompts": {"<lang>": [...]},
     "neighborhood_answers": {"<lang>": [...]}, "multi_hop_questions": {"<lang>": [...]},
     "multi_hop_new_answer": {"<lang>": "..."}}

Run from the EasyEdit root, e.g.:
    python examples/run_memla_mkeb.py --hparams_dir ./hparams/MEMLA/qwen2.5-0.5b.yaml \
        --data_dir ./data/MKEB/counterfact_mkeb.json --ds_size 10 --edit_lang en
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the EasyEdit root

from easyeditor import BaseEditor, MEMLAHyperParams  # noqa: E402

LANGS = ("en", "zh", "fr", "de", "it", "es", "pt", "pl", "ru", "ja", "ko", "th")
METRICS = ("reliability", "generality", "locality", "portability")


def fill(template, subject):
    """Put the subject into the prompt's ``{}`` (prompts without a slot are full questions)."""
    return template.replace("{}", subject, 1) if "{}" in template else template


def load_mkeb(path, ids_file=None, ds_size=None):
    """MKEB records from a JSON list (or JSON lines), optionally restricted to an id list."""
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if text.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if ids_file:
        with open(ids_file, encoding="utf-8") as f:
            ids = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        by_id = {str(r["example_id"]): r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"{ids_file}: ids not in {path}: {missing[:5]}")
        records = [by_id[i] for i in ids]
    if ds_size is not None:
        records = records[:ds_size]
    return records


def record_langs(record):
    known = [lang for lang in LANGS if lang in record["edit"]]
    return known + sorted(set(record["edit"]) - set(known))


def language_entry(record, lang):
    fact = record["edit"][lang]
    return {
        "prompt": fill(fact["prompt"], fact["subject"]),
        "subject": fact["subject"],
        "target_new": fact["target_new"],
        "target_true": fact.get("target_true"),
        "paraphrases": list(record.get("paraphrase_prompts", {}).get(lang, [])),
    }


def build_request(record, edit_lang, eval_langs=None):
    """One EasyEdit request: the edit in ``edit_lang`` plus every language's evaluation inputs."""
    if edit_lang not in record["edit"]:
        raise KeyError(f"record {record['example_id']} has no edit in {edit_lang!r}")
    langs = record_langs(record)
    own = language_entry(record, edit_lang)
    request = {
        "case_id": record["example_id"],
        "prompt": own["prompt"],
        "subject": own["subject"],
        "target_new": own["target_new"],
        "ground_truth": own["target_true"],
        "rephrase_prompt": own["paraphrases"][0] if own["paraphrases"] else None,
        "locality": {},
        "portability": {},
        "edit_lang": edit_lang,
        "languages": {lang: language_entry(record, lang) for lang in langs},
    }
    for lang in langs if eval_langs is None else [l for l in eval_langs if l in record["edit"]]:
        entry = request["languages"][lang]
        request["portability"][f"{lang}_reliability"] = {
            "prompt": [entry["prompt"]], "ground_truth": [entry["target_new"]],
        }
        if entry["paraphrases"]:
            request["portability"][f"{lang}_generality"] = {
                "prompt": entry["paraphrases"], "ground_truth": [entry["target_new"]] * len(entry["paraphrases"]),
            }
        prompts = record.get("neighborhood_prompts", {}).get(lang) or []
        answers = record.get("neighborhood_answers", {}).get(lang) or []
        if prompts and len(prompts) == len(answers):
            request["locality"][f"{lang}_locality"] = {"prompt": list(prompts), "ground_truth": list(answers)}
        questions = record.get("multi_hop_questions", {}).get(lang) or []
        answer = record.get("multi_hop_new_answer", {}).get(lang)
        if questions and answer:
            request["portability"][f"{lang}_portability"] = {
                "prompt": list(questions), "ground_truth": [answer] * len(questions),
            }
    return request


def _mean(values):
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def _score(metrics, phase, lang, name):
    section = "locality" if name == "locality" else "portability"
    if name == "locality" and phase == "pre":
        return None  # locality compares post-edit with pre-edit predictions
    value = metrics.get(phase, {}).get(section, {}).get(f"{lang}_{name}_acc")
    if value is None:
        return None
    return _mean(value) if isinstance(value, (list, tuple)) else float(value)


def summarize(all_metrics, requests, edit_lang):
    """Per-language means over records, and the mean over the languages other than ``edit_lang``."""
    langs = []
    for request in requests:
        langs += [l for l in request["languages"] if l not in langs]
    table = {}
    for lang in langs:
        table[lang] = {}
        for name in METRICS:
            row = {}
            for phase in ("pre", "post"):
                scores = [_score(m, phase, lang, name) for m in all_metrics]
                row[phase] = _mean([s for s in scores if s is not None])
            if row["post"] is not None:
                table[lang][name] = row
    others = [l for l in langs if l != edit_lang]
    cross = {}
    for name in METRICS:
        for phase in ("pre", "post"):
            values = [table[l][name][phase] for l in others if name in table[l] and table[l][name][phase] is not None]
            if values:
                cross.setdefault(name, {})[phase] = _mean(values)
    return {"edit_lang": edit_lang, "n_records": len(all_metrics), "per_language": table, "other_languages": cross}


def print_summary(summary):
    print(f"\nMEMLA, edit language {summary['edit_lang']}, {summary['n_records']} record(s); "
          f"EasyEdit token accuracy, pre -> post edit")
    print("lang  " + "  ".join(f"{name:>19}" for name in METRICS))

    def cell(row):
        if row is None:
            return f"{'-':>19}"
        pre = "  -  " if row.get("pre") is None else f"{row['pre']:.3f}"
        return f"{pre:>8} -> {row['post']:.3f}"

    for lang, row in summary["per_language"].items():
        print(f"{lang:<5} " + "  ".join(cell(row.get(name)) for name in METRICS))
    if summary["other_languages"]:
        print("other " + "  ".join(cell(summary["other_languages"].get(name)) for name in METRICS))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams_dir", required=True, type=str, help="a hparams/MEMLA/*.yaml file")
    parser.add_argument("--data_dir", required=True, type=str, help="an MKEB-format JSON file")
    parser.add_argument("--ids", default=None, type=str, help="file of example ids to edit, one per line")
    parser.add_argument("--ds_size", default=None, type=int, help="edit the first N records")
    parser.add_argument("--edit_lang", default="en", type=str)
    parser.add_argument("--eval_langs", nargs="*", default=None, help="default: every language of the record")
    parser.add_argument("--output_dir", default="./outputs", type=str)
    parser.add_argument("--sequential_edit", action="store_true")
    args = parser.parse_args(argv)

    records = load_mkeb(args.data_dir, args.ids, args.ds_size)
    requests = [build_request(r, args.edit_lang, args.eval_langs) for r in records]

    hparams = MEMLAHyperParams.from_hparams(args.hparams_dir)
    editor = BaseEditor.from_hparams(hparams)
    metrics, _, _ = editor.edit_requests(requests, sequential_edit=args.sequential_edit, verbose=False)

    summary = summarize(metrics, requests, args.edit_lang)
    print_summary(summary)
    os.makedirs(args.output_dir, exist_ok=True)
    model = str(hparams.model_name).rstrip("/").split("/")[-1]
    output_file = os.path.join(
        args.output_dir, f"{model}_MEMLA_MKEB_{args.edit_lang}_N={len(records)}_Sequential={args.sequential_edit}.json"
    )
    with open(output_file, "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "metrics": metrics}, f, ensure_ascii=False, indent=2,
                  default=lambda o: o.item() if hasattr(o, "item") else str(o))
    print("See results at:", output_file)
    return summary


if __name__ == "__main__":
    main()
