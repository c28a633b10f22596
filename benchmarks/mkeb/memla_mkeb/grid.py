"""The tuning grid: each method's strength knob, expanded into catalog methods ``<method>@<value>``.

Every method is compared at an operating point chosen the same way (benchmarks/mkeb/README.md,
"Tuning grid"): a few values of one knob, tried on dev records, the same number of values for
every method. The grid is data (``conf/grid/default.yaml``, composed as ``cfg.grid``); this module
turns it into catalog entries so the harness runs a grid point like any other method: the base
entry's kind, algorithm and hparams file, with the knob added to its overrides and a
``grid_point`` that the runner writes into each row. :mod:`.select` reads those rows back.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from .settings import BenchConfigError

#: Separates a method from its grid value in a method name: ``memla@0.3``.
SEP = "@"


@dataclass(frozen=True)
class Knob:
    """One method's grid: the hparams field and its values, from the weakest edit to the strongest."""

    method: str
    knob: str
    values: tuple[Any, ...]

    def names(self) -> list[str]:
        """The catalog names of the points, in grid order."""
        return [point_name(self.method, v) for v in self.values]


def format_value(value: Any) -> str:
    """A knob value as it appears in a method name (``0.3``, ``5e-05``, ``15000``, ``true``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def point_name(method: str, value: Any) -> str:
    """The catalog name of one grid point."""
    return f"{method}{SEP}{format_value(value)}"


def default_grid_file() -> Path:
    """The shipped grid (``conf/grid/default.yaml``)."""
    return Path(__file__).resolve().parent / "conf" / "grid" / "default.yaml"


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def load_grid(source: Any = None) -> list[Knob]:
    """The grid from a mapping (``cfg.grid``), a YAML file, or the shipped file when ``None``.

    Checks that every method has a knob and exactly ``points_per_method`` distinct values:
    the protocol gives every method the same number of tries.
    """
    if source is None or isinstance(source, (str, Path)):
        import yaml

        path = Path(source) if source is not None else default_grid_file()
        if not path.is_file():
            raise BenchConfigError(f"grid file not found: {path}")
        source = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    grid = _plain(source) or {}
    n_points = grid.get("points_per_method")
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points < 1:
        raise BenchConfigError(f"grid.points_per_method={n_points!r}: give the number of points every method gets (>= 1)")
    knobs = []
    for method, entry in (grid.get("methods") or {}).items():
        if not isinstance(entry, Mapping) or not entry.get("knob"):
            raise BenchConfigError(f"grid.methods.{method}: give knob (an hparams field) and values")
        values = list(entry.get("values") or [])
        if len(values) != n_points:
            raise BenchConfigError(
                f"grid.methods.{method}.values has {len(values)} points; every method gets "
                f"grid.points_per_method={n_points}")
        if len({format_value(v) for v in values}) != len(values):
            raise BenchConfigError(f"grid.methods.{method}.values repeats a value: {values}")
        knobs.append(Knob(str(method), str(entry["knob"]), tuple(values)))
    return knobs


def grid_catalog(knobs: list[Knob], catalog: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Catalog entries for every grid point whose method is in ``catalog``.

    Each is the base entry with ``overrides[knob] = value`` and a ``grid_point`` naming the
    base method, the knob and the value. A grid method the catalog does not define adds no
    points (a catalog of one's own need not hold every method; asking for such a point is then
    the usual "unknown method" error).
    """
    out: dict[str, dict[str, Any]] = {}
    for k in knobs:
        if k.method not in catalog:
            continue
        base = _plain(catalog.get(k.method))
        if not isinstance(base, Mapping):
            raise BenchConfigError(f"catalog.{k.method} must be a mapping to vary it in the grid, got {base!r}")
        if base.get("kind") == "unedited":
            raise BenchConfigError(f"grid.methods.{k.method}: the unedited model has nothing to tune")
        for index, value in enumerate(k.values):
            entry = copy.deepcopy(dict(base))
            entry["overrides"] = {**(entry.get("overrides") or {}), k.knob: value}
            entry["grid_point"] = {"method": k.method, "knob": k.knob, "value": value, "index": index}
            out[point_name(k.method, value)] = entry
    return out


def with_grid(catalog: Mapping[str, Any], grid: Any) -> dict[str, Any]:
    """``catalog`` plus its grid points (``grid``: ``cfg.grid``; ``None`` adds none)."""
    catalog = dict(_plain(catalog) or {})
    if grid is None:
        return catalog
    points = grid_catalog(load_grid(grid), catalog)
    clash = sorted(set(points) & set(catalog))
    if clash:
        raise BenchConfigError(f"catalog already has {', '.join(clash)}; grid points are named <method>{SEP}<value>")
    return {**catalog, **points}


def grid_methods(knobs: list[Knob], only: Optional[list[str]] = None) -> list[str]:
    """Every point's method name, method by method in grid order (``only``: these base methods)."""
    return [name for k in knobs if only is None or k.method in only for name in k.names()]


__all__ = ["Knob", "SEP", "default_grid_file", "format_value", "grid_catalog", "grid_methods", "load_grid",
           "point_name", "with_grid"]
