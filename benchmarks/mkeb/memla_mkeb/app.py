"""``memla-mkeb``: the Hydra entry point of the MKEB benchmark.

Examples::

    memla-mkeb                                   # the README's main job (dev subset, default model)
    memla-mkeb data.limit=2 methods=[unedited,memla] run_dir=runs/quick
    memla-mkeb -m shard.count=2 shard.index=0,1  # local multirun over two shards
    memla-mkeb -m hydra/launcher=slurm shard.count=8 'shard.index=range(8)'   # SLURM (extra "slurm")

Bad settings (unknown method or language, missing data file, ...) end with one line on
stderr and exit status 2; Ctrl-C ends with status 130 after the finished rows are saved.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

CONF_DIR = Path(__file__).resolve().parent / "conf"
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def _run_dir_resolver(*, _root_: Any) -> str:
    from .settings import resolve_run_dir

    try:
        return str(resolve_run_dir(_root_))
    except Exception:  # never fail inside Hydra's interpolation; the task reports bad values
        return "runs/invalid-config"


def register_resolvers() -> None:
    """OmegaConf resolvers used by conf/config.yaml (idempotent, called before composing)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mkeb_run_dir"):
        OmegaConf.register_new_resolver("mkeb_run_dir", _run_dir_resolver)


def compose_config(overrides: Sequence[str] = ()) -> Any:
    """The config ``memla-mkeb OVERRIDES...`` would run with (for tests and notebooks)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="memla_mkeb"):
        return compose(config_name="config", overrides=list(overrides))


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_task(cfg: Any) -> int:
    """Run one job; MEMLA errors become one line on stderr. Returns the exit status."""
    from memla_plugin.errors import MEMLAError

    from .runner import run_benchmark

    try:
        run_benchmark(cfg)
    except MEMLAError as exc:
        print(f"memla-mkeb: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("memla-mkeb: interrupted; finished rows are saved, rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _task(cfg: Any) -> None:
    status = run_task(cfg)
    if status:
        raise SystemExit(status)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console entry point (``memla-mkeb``)."""
    import hydra

    register_resolvers()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)()


if __name__ == "__main__":
    main()
