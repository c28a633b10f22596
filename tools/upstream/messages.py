"""The commit message of each pull request: what a reviewer reads first."""


HOST_FIXES_MESSAGE = (
    "Fix generate_fast's cache mask, layer_stats(progress=None) and MEND checkpoints under weights_only",
    """
Three independent fixes, each small, found while adding a method on the pinned
commit with transformers 5.x and torch 2.6+:

- util/generate.py: with past_key_values, the attention mask handed to the
  model must cover every cached position as well as the new ones (transformers
  reads it as the mask of the whole sequence). generate_fast sliced it to the
  new positions only, so under transformers 5.x every generated token attended
  to nothing before it. Pass attention_mask[:, :cur_context.stop].
- models/rome/layer_stats.py, models/r_rome/layer_stats.py: progress=None was
  replaced by `lambda x: x` and then called with total=..., a TypeError.
- trainer/algs/MEND.py, SERAC.py, models/mend/mend_main.py: the state dicts
  pickled the model config object, which torch >= 2.6's default
  weights_only=True refuses (BaseTrainer.run could not reload its own
  checkpoint), and mend_main.py loaded archives with weights_only=False, which
  runs whatever a pickle names. Store config.to_dict() and load with
  weights_only=True everywhere.

Each fix was checked before/after on a tiny Qwen2 model on CPU.
""",
)

CORE_MESSAGE = (
    "Add MEMLA: multilingual knowledge editing with neuron-masked LoRA",
    """
MEMLA (Xie et al. 2024, arXiv:2406.11566) edits a fact in one language so that
the edit carries over to other languages. It attributes the fact to FFN neurons
with integrated gradients in several languages, splits them into language-
independent neurons (shared by the identification languages, en/zh/fr by
default) and language-specific ones, and trains two masked low-rank updates of
the FFN down-projections that touch only those neurons.

- easyeditor/models/memla: MEMLAHyperParams (loaded with load_hparams_config and
  normalize_alg_name), apply_memla_to_model, the reference attribution, neuron
  sets, masked LoRA, training
- ALG_DICT["MEMLA"]; edit() / edit_requests() and sequential editing (no
  batch_edit: requests are edited one after the other). A request whose fact
  has no knowledge neurons is logged and skipped, the run goes on.
- hparams/MEMLA: mGPT and Llama-3-8B (the paper's models) and
  Qwen2.5-Coder-0.5B-Instruct, all with the paper's constants; like ROME's,
  each YAML names the model's FFN modules (attr_module_tmp, edit_module_tmp)
- examples/MEMLA.md and examples/run_memla.py

This code was written as a separate package first and is offered here as a
starting point: once merged it is EasyEdit's to change. Speed-ups and the MKEB
benchmark follow as separate pull requests.
""",
)

SPEED_MESSAGE = (
    "MEMLA: fast attribution, lower-layer replay in training and a neuron cache",
    """
The speed-ups of the MEMLA editor, kept apart from the method so they can be
reviewed (or declined) on their own:

- neurons/fast.py, neurons/stack.py: integrated gradients recompute only what a
  patch of layer l at the last prompt position can change (positions from the
  last prompt token on, layers l..L, prefix keys/values cached), with the path
  points of several layers batched. Models whose decoder stack it does not know
  use the reference attribution. It drives decoder layers directly, so it is tied
  to the transformers internals it was written against (checked with
  transformers 5.x on CPU only); the test below compares it with the reference.
  Both this and the replay are on by default in this pull request; if that is
  too much trust in decoder internals, making them opt-in is a one-line change
  each (AttributionSettings.implementation, reuse_lower_layers).
- training.py: layers below the lowest edited one are run once and their output
  replayed during the LoRA steps, and models that accept `logits_to_keep` compute
  logits only for the positions the loss reads.
- neurons/attribution.py: P(target) with a hand-written backward that never
  holds a full log-probability tensor (memory); architectures.py: the decoder
  layout per model type (final norm, rotary embedding, FFN norm) that the fast
  path drives, and the FFN module names it knows when the hparams leave them unset.
- neurons/cache.py: `neuron_cache_dir` keeps each fact's selected neurons on
  disk per model, attribution settings and language, in the MEMLA authors' JSON
  format (one file per language), so a fact is attributed once across runs.
  Requests without a case_id are keyed by the content of their attribution
  inputs, so two different facts never share an entry.
- tests/test_memla_fast_attribution.py: fast == reference (scores and selected
  neurons) on tiny random Qwen2 and Llama models on CPU.
""",
)

MKEB_MESSAGE = (
    "Add the MKEB multilingual benchmark: dataset, converter and per-language metrics",
    """
MKEB (Xie et al. 2024, arXiv:2406.11566) evaluates a knowledge edit in up to
twelve languages. This adds it beside the other datasets:

- easyeditor/dataset/mkeb: MKEBRecord and its JSON layout (the authors'
  MLiKE_v2.json), load_mkeb with record validation, MKEBDataset (one
  edit_requests-ready request per record, with every language's version of the
  fact under `languages`), and a converter from the BMIKE-53 release
  (`python -m easyeditor.dataset.mkeb.convert bmike53 --src DIR --out FILE`).
- easyeditor/evaluate/mkeb: score_record / score_records, the MKEB metrics per
  language (ES and PS compare P(target_new) with P(target_true), NS and MQ are
  token-set F1 of a greedy decode against the neighbourhood and multi-hop
  answers) and EasyEdit's token accuracies (rel/gen/loc/port), each metric
  declared once in metrics.py. Scores are per language, not filed under
  portability keys.
- examples/MKEB.md and examples/run_mkeb.py: convert, edit each record, score
  every language before and after.

As with the method, this is offered as a starting point that EasyEdit owns once
merged.
""",
)

MESSAGES = {"core": CORE_MESSAGE, "speed": SPEED_MESSAGE, "mkeb": MKEB_MESSAGE}
