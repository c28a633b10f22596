"""Scripts run in a fresh interpreter against an EasyEdit copy (see :mod:`..isolated`).

They import only EasyEdit, torch, transformers and tokenizers, never ``memla_plugin``: the
interpreter they run in blocks it, to show that the upstream code stands on its own. Each
prints one ``RESULT_JSON: {...}`` line with what it measured.
"""
