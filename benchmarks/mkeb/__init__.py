"""The MKEB head-to-head benchmark (installed as the ``memla_mkeb`` package)."""
