"""The MEMLA contribution to EasyEdit, as a series of pull requests made from this repository.

Not part of the installed library: run it from a checkout, ``python -m tools.upstream --help``.
:mod:`.layout` is the one table of what goes where; :mod:`.export` computes each pull request's
files, :mod:`.gitpatch` turns them into ``git am``-able patches, :mod:`.verify` checks them.
"""
