"""The one table of the upstream contribution: which plugin module goes where, in which pull request.

Everything else (the import rewriting, which files each pull request adds, the size report,
the tests) is derived from :data:`MODULES`. When a plugin module moves, only its row here
changes; a module the method code imports but this table does not list fails the export
with a message naming it.

Pull requests, applied in this order on top of the pinned EasyEdit commit:

* ``host-fixes``: minimal fixes of EasyEdit defects (:mod:`.host_fixes`), no MEMLA code;
* ``core``: MEMLA itself, with the reference attribution and a plain training loop;
* ``speed``: the fast attribution, the lower-layer replay in training, the on-disk neuron
  cache and the test that the fast path equals the reference;
* ``mkeb``: the MKEB dataset class, the multilingual evaluation helper and its example.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PR_ORDER = ("host-fixes", "core", "speed", "mkeb")

METHOD_DIR = "easyeditor/models/memla"
DATASET_DIR = "easyeditor/dataset/mkeb"
EVAL_DIR = "easyeditor/evaluate/mkeb"


@dataclass(frozen=True)
class Row:
    """One plugin module and its place upstream.

    ``pr``: the pull request that adds the module. ``core_strip``: names (functions,
    parameters, keywords, locals) removed from the module in the core pull request and
    restored by the speed one. ``strip``: names removed in every pull request (options
    upstream does not offer). ``subs``: exact text substitutions, each of which must match;
    ``core_subs``: the same, in the core pull request only. ``drop``: defs removed by
    (qualified) name although something uses the name (only the coarse dead-code rule would keep them). ``doc``: the module docstring upstream, where
    the plugin's talks about the plugin. ``text``: a file of ``templates/`` used instead of the
    module's own text (written with the plugin's relative imports, which are rewritten as usual).
    """

    plugin: str
    upstream: str
    pr: str = "core"
    core_strip: tuple[str, ...] = ()
    strip: tuple[str, ...] = ()
    subs: tuple[tuple[str, str], ...] = ()
    core_subs: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()
    doc: Optional[str] = None
    text: Optional[str] = None


#: the plugin's export of an edit as a peft adapter: not part of the upstream method
ADAPTERS = ("save_adapter_dir", "on_trained", "capture", "adapter_dir")
#: the plugin's prompt formats (chat template, answer preamble): upstream puts prompts bare, as EasyEdit does
PROMPT_FORMAT = ("prompt_format", "format_prompt", "PROMPT_FORMATS")
#: the plugin's switches beyond the paper (an improved preset: LIKN by vote, generic-neuron filter,
#: locality term, scored attribution targets); upstream gets the paper's method
BEYOND_PAPER = ("likn_min_langs", "min_langs", "background_dir", "generic_max_share", "locality_weight",
                "locality_prompts", "locality_kl", "_open_background", "background", "drop_generic",
                "generic_dropped_per_lang", "attr_target_form", "target_form", "attribution_target", "Background",
                "_validate_switches", "attr_positions", "positions", "POSITIONS", "_ATTR_POSITIONS",
                "score_each_position", "split_by_position")

#: the plugin's locality term in training (not in the paper): a switch upstream does not have is off,
#: so ``if locality is None:`` keeps its body and everything else that names these goes
LOCALITY_TERM = ("locality", "LocalityTerm", "with_locality", "logprobs_with_locality", "loc_last",
                 "add_locality_rows")

#: what EasyEdit's own loader does upstream (scientific-notation floats) or what a plain dataclass call does
#: (unknown keys refused): the plugin's own loading and coercion go
EASYEDIT_LOADS = ("_coerce", "construct_float_from_scientific_notation", "from_dict", "_validate", "__post_init__")

#: the choice between the fast and the reference implementation of integrated gradients: the speed pull
#: request's (core has the reference alone)
IMPLEMENTATION = ("implementation", "IMPLEMENTATIONS")

#: the plugin's one-pass attribution patching ("atp"), an alternative to the paper's integrated gradients
ONE_PASS = ("attribute_onepass", "attribute_onepass_fact", "attr_method", "_ATTR_METHODS")

#: the plugin's per-architecture table of module names: upstream, core reads the templates from its YAMLs
ARCH_TABLE = ("ArchLayout", "_GPT2", "_LLAMA", "_GEMMA", "_GEMMA3_MM", "KNOWN_ARCHITECTURES", "layout_of",
              "layers_path", "known", "path")

#: the plugin's joint batch edit (one training over several facts' neurons): not in the paper; upstream edits the
#: requests of a call one after the other
JOINT_BATCH = ("batch_mode", "BATCH_MODES", "_joint_edit", "joint", "apply_joint")

#: the plugin's edit report (timings, counts, traces; the last call's is read by its CLI): bookkeeping, not the
#: method. Upstream, execute_memla returns the updates alone.
LAST_REPORT = ("_set_last", "_last", "last_edit_report", "total", "reports", "report", "EditReport",
               "_record_training", "hits")

#: the body of the plugin's ``_first_piece_marked``, which upstream is ``marks_word_start`` itself (no memo)
FIRST_PIECE_MARKED = """    try:
        pieces = tok.convert_ids_to_tokens(_ids(tok, "x", False))
        return bool(pieces) and str(pieces[0]).startswith("\\u2581")
    except Exception:  # an exotic tokenizer: treat it as one that does not mark word starts
        return False
"""

MODULES: tuple[Row, ...] = (
    Row("memla_plugin.errors", f"{METHOD_DIR}/errors.py",
        doc="Errors MEMLA raises on bad input or on an edit it cannot make."),
    Row("memla_plugin.hparams", f"{METHOD_DIR}/memla_hparams.py", core_strip=("neuron_cache_dir",),
        strip=("dtype", "_DTYPES", "MKEB_LANGS", "_validate_device", "parse_device", "DEVICE_HELP")
        + ADAPTERS + PROMPT_FORMAT + BEYOND_PAPER + ONE_PASS + EASYEDIT_LOADS + JOINT_BATCH, drop=("MEMLAHyperParams.from_json", "MEMLAHyperParams.replace"),
        core_subs=(("(None: taken from memla_plugin.architectures)", "(``{}`` is the layer; every YAML names them)"),),
        doc="MEMLA hyperparameters: EasyEdit's ``HyperParams`` with MEMLA's settings and the paper's values."),
    Row("memla_plugin.memla_main", f"{METHOD_DIR}/memla_main.py",
        core_strip=("reuse_lower_layers", "reused_lower_layers", "_open_cache", "_cache_id", "cache", "settings"),
        strip=ADAPTERS + BEYOND_PAPER + LAST_REPORT + JOINT_BATCH + ("lang_seconds", "_check_targets"),
        core_subs=(("missing from the request and the neuron cache;", "missing from the request;"),
                   ("per_lang[lang] = _find_neurons(", "per_lang[lang] = neurons.find_neurons("),
                   ("    if config.is_empty():\n", "    if not config.layers:\n"),
                   # without the cache, the edit language is always attributed (or the request fails before)
                   ("""    if request.edit_lang not in per_lang:
        raise MissingLanguageError(f"no attribution for the edit language of {request.label}")
""", ""))),
    # core reads the module templates from its YAMLs (as ROME's and MEMIT's do); the speed pull request
    # brings the per-architecture table back for the fast attribution's decoder internals
    Row("memla_plugin.architectures", f"{METHOD_DIR}/architectures.py", strip=("_check_template",),
        core_strip=("final_norm", "rotary", "ffn_norm") + ARCH_TABLE,
        core_subs=(("    num_layers: Optional[int] = None,\n", ""),
                   ("n = num_layers if num_layers is not None else _count_layers(", "n = _count_layers("),
                   ("""f"architecture {model_type!r} has no known FFN module names "
            f"(known: {', '.join(sorted(KNOWN_ARCHITECTURES))}); set attr_module_tmp and \"""",
                    """f"no FFN module names for this {model_type!r} model: set attr_module_tmp and \""""),
                   # the model type picks the fast attribution's decoder layout (speed); core reads it nowhere
                   ("    model_type: str\n    num_layers: int\n", "    num_layers: int\n"),
                   ("return ArchSpec(model_type=model_type, num_layers=n,", "return ArchSpec(num_layers=n,")),
        drop=("ArchSpec.edit_module",),
        doc="The FFN modules MEMLA attributes and edits, named by the hparams' ``attr_module_tmp``/``edit_module_tmp``."),
    Row("memla_plugin.devices", f"{METHOD_DIR}/architectures.py"),
    Row("memla_plugin.training", f"{METHOD_DIR}/training.py",
        core_strip=("reuse_lower_layers", "reused_lower_layers", "LowerLayerCache", "layer_list", "_accepts_logits_to_keep"),
        strip=PROMPT_FORMAT + BEYOND_PAPER + LOCALITY_TERM + ("final_loss", "final_p_new", "final_p_true", "seconds", "LOG"),
        # without logits_to_keep, every position's logits are computed: the loss reads them at the prompt's end
        core_subs=(("    #: the first position whose logits the loss reads\n    first_read: int\n", ""),
                   ("new_ids, true_ids, len(prompt_ids) - 1)", "new_ids, true_ids)"),
                   ("    return logits[:, -keep:]\n", "    return logits\n"),
                   ("off = batch.edit_offset  # kept position off + k", "off = batch.prompt_len - 1  # position off + k"),
                   ("def _target_logprobs(logits: torch.Tensor, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor]:\n",
                    "def _target_logprobs(model: nn.Module, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor]:\n"
                    '    """Summed log-probabilities of the new (row 0) and true (row 1) targets after the prompt."""\n'
                    "    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits\n"),
                   ("lp_new, lp_true = target_logprobs(model, batch)", "lp_new, lp_true = _target_logprobs(model, batch)"),
                   # P(true) per step is the plugin's report (final_p_true); nothing upstream reads it
                   ("    p_true: list[float] = field(default_factory=list)\n", ""),
                   ("    result.p_true.append(float(p_true.detach()))\n", ""),
                   ('    stopped_by: str = "max_steps"  # "loss" | "prob" | "max_steps"\n', ""),
                   ("                result.stopped_by = stop\n", "")),
        doc="Training the masked dual LoRA on the edit prompt (MEMLA paper, section 3.4)."),
    # the masked LoRA package is one module upstream (rows sharing a path are joined in this order)
    Row("memla_plugin.masked_lora", f"{METHOD_DIR}/masked_lora.py"),
    Row("memla_plugin.masked_lora.config", f"{METHOD_DIR}/masked_lora.py", strip=("init", "INITS")),
    Row("memla_plugin.masked_lora.layer", f"{METHOD_DIR}/masked_lora.py", drop=("MaskedDualLoRA.mask",)),
    Row("memla_plugin.masked_lora.model", f"{METHOD_DIR}/masked_lora.py",
        drop=("MaskedLoRAModel.__enter__", "MaskedLoRAModel.__exit__"),
        core_subs=(("        self.model = model\n        self.config = config\n", ""),)),
    Row("memla_plugin.neurons", f"{METHOD_DIR}/neurons/__init__.py", text="neurons_init.py",
        core_strip=("attribute_fast", "NeuronCache", "neuron_bounds")),
    Row("memla_plugin.neurons.cache", f"{METHOD_DIR}/neurons/cache.py", pr="speed"),
    # upstream, neurons/attribution.py holds settings, inputs, integrated gradients, the reference implementation,
    # thresholding and LIKN/LSKN; the speed pull request adds its modules beside it
    Row("memla_plugin.neurons.inputs", f"{METHOD_DIR}/neurons/attribution.py",
        doc="Integrated-gradients attribution of FFN neurons (MEMLA paper, arXiv 2406.11566, §3.1)."),
    Row("memla_plugin.neurons.settings", f"{METHOD_DIR}/neurons/attribution.py",
        core_strip=("cache_key",) + IMPLEMENTATION, strip=PROMPT_FORMAT + BEYOND_PAPER + ONE_PASS + ("method", "METHODS"),
        subs=(('key = key if self.prompt_format == "bare" else f"{key}-{self.prompt_format}"\n'
               '        return key if self.positions == "last" else f"{key}-pos{self.positions}"', "return key"),),
        core_subs=(("        if isinstance(hparams, cls):\n            return hparams\n", ""),
                   # built by from_hparams alone, which passes a tuple
                   ("""        if self.layers is not None and not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))
""", ""))),
    # the hand-written backward of P(target) saves memory: the speed pull request's; core lets autograd do it
    Row("memla_plugin.neurons.integrated", f"{METHOD_DIR}/neurons/attribution.py",
        core_subs=(("    return _TargetProbability.apply(logits, idx)\n",
                    "    z = logits.to(torch.promote_types(logits.dtype, torch.float32))\n"
                    "    return (z.gather(-1, idx) - torch.logsumexp(z, dim=-1, keepdim=True)).exp().squeeze(-1)\n"),)),
    Row("memla_plugin.neurons.reference", f"{METHOD_DIR}/neurons/attribution.py",
        core_subs=(("last, k = fact.last, fact.n_target", "last, k = fact.last, len(fact.target_ids)"),
                   # the tokenised-fact entry point serves the speed pull request's fast path; core has one function
                   ("""    return attribute_reference_fact(model, tok, encode_fact(tok, prompt, target, model_device(model)), arch, settings)


def attribute_reference_fact(model, tok, fact: FactTokens, arch, settings: AttributionSettings) -> torch.Tensor:
    \"\"\":func:`attribute_reference` of an already tokenised fact.\"\"\"
""", ""),
                   ("    device = fact.prompt_ids.device\n",
                    "    device = model_device(model)\n    fact = encode_fact(tok, prompt, target, device)\n"))),
    Row("memla_plugin.neurons.selection", f"{METHOD_DIR}/neurons/attribution.py",
        core_strip=("attribute_fast", "attribute_fast_fact", "method") + IMPLEMENTATION,
        strip=PROMPT_FORMAT + ONE_PASS + BEYOND_PAPER,
        subs=((" (the prompt put in ``settings.prompt_format``)", ""),),
        core_subs=(("from .settings import AttributionSettings\n",
                    "from .reference import attribute_reference\nfrom .settings import AttributionSettings\n"),
                   ("scores = score_prompt(", "scores = attribute_reference("))),
    Row("memla_plugin.neurons.sets", f"{METHOD_DIR}/neurons/attribution.py", strip=BEYOND_PAPER,
        drop=("NeuronSets.layers", "NeuronSets.is_empty"),
        subs=(("""    if not id_langs:
        likn: set[Neuron] = set()
    elif min_langs is None:
        likn = set.intersection(*(sets[l] for l in id_langs))
    else:
        likn = shared_by((sets[l] for l in id_langs), min(int(min_langs), len(id_langs)))
""", """    likn = set.intersection(*(sets[l] for l in id_langs)) if id_langs else set()
"""),)),
    Row("memla_plugin.neurons.fast", f"{METHOD_DIR}/neurons/fast.py", pr="speed"),
    Row("memla_plugin.neurons.stack", f"{METHOD_DIR}/neurons/stack.py", pr="speed"),
    # the request MEMLA parses from EasyEdit's dict lives beside the apply function that parses it
    Row("memla_plugin.request", f"{METHOD_DIR}/memla_main.py", strip=("extra", "FACT_KEYS"), core_strip=("relation",),
        core_subs=(('    target_new: str = ""\n', ""), ('            target_new=str(data.get("target_new") or ""),\n', ""),
                   ('    target_true: str\n    subject: str = ""\n', "    target_true: str\n"),
                   ("            subject=str(subject),\n", ""))),
    Row("memla_plugin.languages", f"{METHOD_DIR}/tokenisation.py",
        doc="How prompts and answer targets become token ids, for editing and for scoring alike."),
    # the plugin remembers its two tokenizer probes per tokenizer; upstream asks the tokenizer each time
    Row("memla_plugin.tokenisation", f"{METHOD_DIR}/tokenisation.py",
        subs=(("    return _probe(tok, \"marks_word_start\", _first_piece_marked)\n", FIRST_PIECE_MARKED),
              ('return _probe(tok, "uses_space_prefix", lambda t: _space_changes_ids(t) and not marks_word_start(t))',
               'return _ids(tok, "x", False) != _ids(tok, " x", False) and not marks_word_start(tok)')),
        drop=("_first_piece_marked",)),
    Row("memla_plugin.locking", f"{METHOD_DIR}/locking.py", pr="speed",
        doc="An inter-process file lock, so concurrent writers of the neuron cache never leave a half-written file."),
    # MKEB: records, loading and the converter beside EasyEdit's other datasets; scoring in evaluate/
    Row("memla_plugin.mkeb", f"{DATASET_DIR}/__init__.py", pr="mkeb", text="mkeb_dataset_init.py"),
    Row("memla_plugin.mkeb.schema", f"{DATASET_DIR}/schema.py", pr="mkeb"),
    Row("memla_plugin.mkeb.validate", f"{DATASET_DIR}/validate.py", pr="mkeb"),
    Row("memla_plugin.mkeb.loader", f"{DATASET_DIR}/loader.py", pr="mkeb",
        subs=(("p = shipped_data_dir() / ID_SETS[str(path)] if str(path) in ID_SETS else Path(path)", "p = Path(path)"),
              ("meta_path(resolve_data_path(path))", "meta_path(path)"),
              ("p = resolve_data_path(path)", "p = Path(path)"),
              (' (``None``/"default": the shipped CounterFact\n    conversion)', ""),
              (', "dev"/"test" for the shipped lists,\n    or an iterable of ids', ",\n    or an iterable of ids"),
              ('ignored.\n\n    ``"dev"``, ``"test"`` and ``"train"`` name the shipped id lists.\n    \"\"\"', 'ignored.\"\"\"')),
        doc="Load MKEB JSON files (the ``MLiKE_v2.json`` list layout) and test-id lists."),
    Row("memla_plugin.mkeb.dataset", f"{DATASET_DIR}/dataset.py", pr="mkeb",
        subs=((' (``None``/"default": the shipped CounterFact conversion)', ""),
              ('id file, "dev"/"test", or ids', "id file or ids")),
        doc=("MKEB records as ``edit_requests`` dicts for one edit language.\n\n"
             "Each request has EasyEdit's keys for the edit language plus ``languages``, every language's\n"
             "version of the fact (MEMLA reads its identification languages from there), and\n"
             "``has_subject_slot`` (False when the subject is not literally in the prompt, which ROME\n"
             "and MEMIT need).\n")),
    Row("memla_plugin.mkeb.convert", f"{DATASET_DIR}/convert.py", pr="mkeb",
        strip=("make_splits", "_cmd_splits", "sp"),
        subs=(("memla-mkeb-convert", "python -m easyeditor.dataset.mkeb.convert"),
              (" (also the shipped conversion report)", "")),
        doc=("BMIKE-53 files (or an MKEB file) -> MKEB JSON: "
             "``python -m easyeditor.dataset.mkeb.convert bmike53 --src DIR --out FILE``.")),
    Row("memla_plugin.mkeb.scoring", f"{EVAL_DIR}/scoring.py", pr="mkeb",
        strip=("shared_prompt_scoring", "share_prompts", "shared"),
        subs=((" ``share_prompts=False`` scores every (prompt, target)\n    sequence separately (slower; equal up to float rounding).", ""),
              ("max_new_tokens, share_prompts, prompt_template", "max_new_tokens, prompt_template")),
        doc=("Scoring a model on MKEB records: plan every sequence, run the engine once, compute the metrics.\n\n"
             "Every teacher-forced (prompt, target) pair and greedy decode the metrics of several records\n"
             "need is collected once, deduplicated and run in batches (:mod:`.engine`); the results go to\n"
             "the metric definitions of :mod:`.metrics`.\n")),
    Row("memla_plugin.mkeb.engine", f"{EVAL_DIR}/engine.py", pr="mkeb"),
    Row("memla_plugin.mkeb.metric_registry", f"{EVAL_DIR}/metrics.py", pr="mkeb"),
    Row("memla_plugin.mkeb.generation", f"{EVAL_DIR}/generation.py", pr="mkeb"),
    Row("memla_plugin.mkeb.reference", f"{EVAL_DIR}/reference.py", pr="mkeb",
        doc=("The unedited model's results on a record: its own scores and what ``loc_acc`` compares with.\n\n"
             "``loc_acc`` is the share of neighbourhood-answer positions where the edited model's argmax\n"
             "equals the unedited model's, so score the record before editing and pass the result as\n"
             "``reference`` to :func:`.scoring.score_record`.\n")),
)

#: per pull request, the modules whose imports the export follows
ROOTS = {
    "core": ("memla_plugin.memla_main", "memla_plugin.hparams"),
    "speed": (),
    "mkeb": ("memla_plugin.mkeb.dataset", "memla_plugin.mkeb.convert", "memla_plugin.mkeb.scoring",
             "memla_plugin.mkeb.reference"),
}

#: names every exported module may define without anything in the export using them
PUBLIC = ("MEMLAHyperParams", "apply_memla_to_model", "execute_memla", "from_hparams", "attribute_fast",
          "attribute_reference", "main", "requests")

#: YAMLs upstream: file name -> (plugin YAML, Hugging Face id, device, one-line note, model_type); the module
#: templates (``attr_module_tmp``/``edit_module_tmp``) are the plugin's table entry of the model type
YAMLS = {
    "qwen2.5-coder-0.5b-instruct.yaml": ("qwen2.5-0.5b.yaml", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "cpu",
                                         "a small model that edits on a CPU in minutes", "qwen2"),
    "mgpt.yaml": ("mgpt-1.3b.yaml", "ai-forever/mGPT", 0, "the paper's multilingual GPT-2 model", "gpt2"),
    "llama3-8b.yaml": ("llama3-8b.yaml", "meta-llama/Meta-Llama-3-8B", 0, "the paper's Llama model (gated on the hub)",
                       "llama"),
}


#: keys the upstream YAMLs leave at MEMLAHyperParams' defaults: EasyEdit plumbing that every model runs with,
#: every layer attributed, the attribution's batch size (speed and memory only), the ablation switches and the seed
YAML_DEFAULTED = ("model_parallel", "max_length", "batch_size", "fp16", "layers", "attr_batch_size", "use_masks",
                  "use_language_specific", "use_language_independent", "seed")


def row(plugin: str) -> Row:
    """The table row of a plugin module (raises KeyError naming the module and this file)."""
    for r in MODULES:
        if r.plugin == plugin:
            return r
    raise KeyError(f"plugin module {plugin} has no row in tools/upstream/layout.py MODULES")


def rows_for(prs: tuple[str, ...]) -> list[Row]:
    """Rows of the modules present once the pull requests ``prs`` are applied."""
    return [r for r in MODULES if r.pr in prs]
