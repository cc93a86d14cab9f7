"""Paper plugins: a paper is data (``paper.yaml``) plus the code it plugs in (blocks, losses).

A plugin is a Python package whose folder holds ``paper.yaml``. In-tree plugins live under
``methods/<paper_id>/`` (imported as ``repro_methods.<paper_id>``); external packages register a
module in the ``bnn_repro.papers`` entry-point group, so a researcher can add a paper without
editing the core. Importing the package runs its registrations (blocks, models, recipes) before
any table is resolved. This module is the only part of the core that imports a plugin.

``paper.yaml`` holds the paper's tables (each published cell with the row and column it came
from, the rows' config specs, the claims, the assumptions), ``defaults`` shared by the tables of
a task, the paper's efficiency claims and the layer shapes of its networks for the kernel
benchmarks.

Tables are validated on load: a malformed file stops with one line naming the file, the field
and the problem.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ReproError
from .merge import deep_merge

ENTRY_POINT_GROUP = "bnn_repro.papers"
IN_TREE_PACKAGE = "repro_methods"
CLAIM_PATTERN = re.compile(r"^\s*([\w.-]+)\s*(>=|>|<=|<|~)\s*([\w.-]+)\s*$")


@dataclass(frozen=True)
class Metric:
    name: str
    column: str  # the column heading in the paper's table
    higher_is_better: bool = True
    unit: str = ""
    digits: int | None = None  # decimals the text tables show (None: the profile's default)
    printed: bool = True  # a column of the paper's table; false: a quantity its text states, measured only


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    source_row: str  # how the row reads in the paper, so every cell can be traced back
    published: dict[str, float]
    spec: dict[str, Any]
    runnable: bool = True
    not_runnable_reason: str = ""


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, checked as comparisons between rows ("a > b", "a >= b"), or "a ~ b":
    equivalent within +-``margin`` (in the metric's units; the claim must give it)."""

    id: str
    text: str
    metric: str
    comparisons: tuple[tuple[str, str, str], ...]  # (left row, operator, right row)
    margin: float | None = None


@dataclass(frozen=True)
class Table:
    paper_id: str
    id: str
    caption: str
    task: str
    dataset: str
    metrics: dict[str, Metric]
    rows: tuple[Row, ...]
    claims: tuple[Claim, ...]
    base: dict[str, Any]
    assumptions: dict[str, str]
    profiles: dict[str, dict[str, Any]]

    def row(self, row_id: str) -> Row:
        for row in self.rows:
            if row.id == row_id:
                return row
        known = ", ".join(r.id for r in self.rows)
        raise ReproError(f"unknown row '{row_id}' in {self.paper_id} table {self.id}: choose from {known}")

    def target_source(self, row: Row, metric: str) -> str:
        return f"Table {self.id}, row '{row.source_row}', column '{self.metrics[metric].column}'"


@dataclass(frozen=True)
class EfficiencyClaim:
    """A speed or memory claim of the paper (or one it cites), set beside what the kernels measure."""
    id: str
    text: str
    kind: str    # speed | memory
    scope: str   # layer (a binary conv or GEMM) | model (a whole network)
    device: str  # cpu | cuda
    value: float  # the claimed ratio (binary better by this factor)
    unmeasured: str = ""  # why the kernels cannot measure it, where they cannot


KERNEL_SHAPE_FIELDS = {"gemm": ("m", "k", "n"), "conv": ("cin", "cout", "size")}


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    authors: str
    venue: str
    year: int
    seed_text: str
    tables: dict[str, Table] = field(default_factory=dict)
    path: Path | None = None
    efficiency_claims: tuple[EfficiencyClaim, ...] = ()
    kernel_shapes: tuple[dict, ...] = ()  # {kind: gemm, name, m, k, n} or {kind: conv, name, cin, cout, size, kernel, stride}

    def table(self, table_id: str) -> Table:
        if str(table_id) not in self.tables:
            known = ", ".join(self.tables)
            raise ReproError(f"unknown table '{table_id}' for paper {self.id}: choose from {known}")
        return self.tables[str(table_id)]


class _Reader:
    """Reads one YAML mapping and reports problems as `file: field: problem`."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str) -> ReproError:
        return ReproError(f"malformed plugin {self.path}: {where}: {problem}")

    def get(self, mapping: Any, key: str, where: str, kind: type | tuple = str, default: Any = ...) -> Any:
        if not isinstance(mapping, dict):
            raise self.fail(where, f"expected a mapping, got {type(mapping).__name__}")
        if key not in mapping:
            if default is ...:
                raise self.fail(f"{where}.{key}" if where else key, "required field is missing")
            return default
        value = mapping[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}" if where else key, f"expected {names}, got {type(value).__name__}")
        return value


def load_paper_file(path: Path) -> Paper:
    """Parse and validate one ``paper.yaml``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReproError(f"malformed plugin {path.parent}: it has no paper.yaml: add one (see methods/bulat2019/) "
                         f"or remove the plugin") from None
    except UnicodeDecodeError as exc:
        raise ReproError(f"malformed plugin {path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ReproError(f"malformed plugin {path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    r = _Reader(path)
    if not isinstance(data, dict):
        raise r.fail("top level", "expected a mapping with id, title and tables")
    paper_id = r.get(data, "id", "")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", paper_id):
        raise r.fail("id", f"'{paper_id}' must be lower-case letters, digits and underscores")
    defaults = r.get(data, "defaults", "", dict, default={})
    for task, layers in defaults.items():
        if not isinstance(layers, dict):
            raise r.fail(f"defaults.{task}", "expected a mapping with base, assumptions or profiles")
        for key, value in layers.items():
            if key not in ("base", "assumptions", "profiles") or not isinstance(value, dict):
                raise r.fail(f"defaults.{task}.{key}", "expected one of base, assumptions, profiles, each a mapping")
    tables_data = r.get(data, "tables", "", dict)
    tables = {str(tid): _load_table(r, paper_id, str(tid), tdata, defaults) for tid, tdata in tables_data.items()}
    return Paper(
        id=paper_id,
        title=r.get(data, "title", ""),
        authors=r.get(data, "authors", "", default=""),
        venue=r.get(data, "venue", "", default=""),
        year=r.get(data, "year", "", int),
        seed_text=r.get(data, "seed_text", "", default=""),
        tables=tables,
        path=path,
        efficiency_claims=tuple(_load_claim(r, i, c) for i, c in enumerate(r.get(data, "efficiency_claims", "", list, default=[]))),
        kernel_shapes=tuple(_load_shape(r, i, s) for i, s in enumerate(r.get(data, "kernel_shapes", "", list, default=[]))),
    )


def _load_claim(r: _Reader, i: int, data: Any) -> EfficiencyClaim:
    where = f"efficiency_claims[{i}]"
    claim = EfficiencyClaim(id=r.get(data, "id", where), text=r.get(data, "text", where), kind=r.get(data, "kind", where),
                            scope=r.get(data, "scope", where), device=r.get(data, "device", where),
                            value=r.get(data, "value", where, float), unmeasured=r.get(data, "unmeasured", where, default=""))
    for name, allowed in (("kind", ("speed", "memory")), ("scope", ("layer", "model")), ("device", ("cpu", "cuda"))):
        if getattr(claim, name) not in allowed:
            raise r.fail(f"{where}.{name}", f"'{getattr(claim, name)}' is not one of {', '.join(allowed)}")
    return claim


def _load_shape(r: _Reader, i: int, data: Any) -> dict:
    where = f"kernel_shapes[{i}]"
    kind = r.get(data, "kind", where)
    if kind not in KERNEL_SHAPE_FIELDS:
        raise r.fail(f"{where}.kind", f"'{kind}' is not one of {', '.join(KERNEL_SHAPE_FIELDS)}")
    shape = {"kind": kind, "name": r.get(data, "name", where)}
    for key in KERNEL_SHAPE_FIELDS[kind]:
        shape[key] = r.get(data, key, where, int)
    if kind == "conv":
        shape["kernel"] = r.get(data, "kernel", where, int, default=3)
        shape["stride"] = r.get(data, "stride", where, int, default=1)
    unknown = set(data) - set(shape)
    if unknown:
        raise r.fail(where, f"unknown field(s) {', '.join(sorted(unknown))}")
    return shape


def _load_table(r: _Reader, paper_id: str, table_id: str, data: Any, defaults: dict) -> Table:
    where = f"tables.{table_id}"
    shared = defaults.get(r.get(data, "task", where), {})  # the paper's defaults for this table's task
    metrics = {}
    for name, mdata in r.get(data, "metrics", where, dict).items():
        mwhere = f"{where}.metrics.{name}"
        metrics[name] = Metric(
            name=name,
            column=r.get(mdata, "column", mwhere),
            higher_is_better=r.get(mdata, "higher_is_better", mwhere, bool, default=True),
            unit=r.get(mdata, "unit", mwhere, default=""),
            digits=r.get(mdata, "digits", mwhere, int, default=None),
            printed=r.get(mdata, "printed", mwhere, bool, default=True),
        )
    if not metrics:
        raise r.fail(f"{where}.metrics", "a table needs at least one metric")
    rows, seen = [], set()
    for i, rdata in enumerate(r.get(data, "rows", where, list)):
        rwhere = f"{where}.rows[{i}]"
        row_id = r.get(rdata, "id", rwhere)
        if row_id in seen:
            raise r.fail(f"{rwhere}.id", f"duplicate row id '{row_id}'")
        seen.add(row_id)
        published = {}
        for metric, value in r.get(rdata, "published", rwhere, dict, default={}).items():
            if metric not in metrics:
                raise r.fail(f"{rwhere}.published.{metric}", f"unknown metric; the table declares {', '.join(metrics)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise r.fail(f"{rwhere}.published.{metric}", f"expected a number, got {value!r}")
            published[metric] = float(value)
        reason = r.get(rdata, "not_runnable", rwhere, default="")
        rows.append(Row(
            id=row_id,
            label=r.get(rdata, "label", rwhere),
            source_row=r.get(rdata, "source_row", rwhere),
            published=published,
            spec=r.get(rdata, "spec", rwhere, dict, default={}),
            runnable=not reason,
            not_runnable_reason=reason,
        ))
    claims = []
    for i, cdata in enumerate(r.get(data, "claims", where, list, default=[])):
        cwhere = f"{where}.claims[{i}]"
        metric = r.get(cdata, "metric", cwhere, default=next(iter(metrics)))
        if metric not in metrics:
            raise r.fail(f"{cwhere}.metric", f"unknown metric '{metric}'")
        comparisons = []
        for text in r.get(cdata, "require", cwhere, list):
            match = CLAIM_PATTERN.match(str(text))
            if not match:
                raise r.fail(f"{cwhere}.require", f"'{text}' is not of the form 'row_a > row_b' (operators > >= < <= ~)")
            left, op, right = match.groups()
            for row_id in (left, right):
                if row_id not in seen:
                    raise r.fail(f"{cwhere}.require", f"'{text}' names unknown row '{row_id}'")
            comparisons.append((left, op, right))
        margin = r.get(cdata, "margin", cwhere, float, default=None)
        equivalence = any(op == "~" for _, op, _ in comparisons)
        if equivalence != (margin is not None) or (margin is not None and margin <= 0):
            raise r.fail(f"{cwhere}.margin", "a claim with '~' comparisons needs a positive margin (in the metric's "
                                             "units), and only such a claim has one")
        claims.append(Claim(id=r.get(cdata, "id", cwhere), text=r.get(cdata, "text", cwhere),
                            metric=metric, comparisons=tuple(comparisons), margin=margin))
    profiles = deep_merge(shared.get("profiles", {}), r.get(data, "profiles", where, dict, default={}))
    for name, overlay in profiles.items():
        if not isinstance(overlay, dict):
            raise r.fail(f"{where}.profiles.{name}", "expected a mapping of config overrides")
    # A table's assumption set to null drops the paper default of that key.
    assumptions = {**shared.get("assumptions", {}), **r.get(data, "assumptions", where, dict, default={})}
    return Table(
        paper_id=paper_id,
        id=table_id,
        caption=r.get(data, "caption", where),
        task=r.get(data, "task", where),
        dataset=r.get(data, "dataset", where),
        metrics=metrics,
        rows=tuple(rows),
        claims=tuple(claims),
        base=deep_merge(shared.get("base", {}), r.get(data, "base", where, dict, default={})),
        assumptions={str(k): str(v) for k, v in assumptions.items() if v is not None},
        profiles=profiles,
    )


def _plugin_modules() -> list[str]:
    """Module names of all plugins: the in-tree ones, then the entry-point group."""
    names = []
    package = importlib.import_module(IN_TREE_PACKAGE)
    for folder in sorted(Path(package.__file__).parent.iterdir()):
        if (folder / "__init__.py").is_file():  # a plugin's package (one without paper.yaml is reported)
            names.append(f"{IN_TREE_PACKAGE}.{folder.name}")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        names.append(entry.value)
    return names


_PAPERS: dict[str, Paper] | None = None


def discover(refresh: bool = False) -> dict[str, Paper]:
    """Import every plugin (running its registrations) and load its paper.yaml, once."""
    global _PAPERS
    if _PAPERS is not None and not refresh:
        return _PAPERS
    papers: dict[str, Paper] = {}
    for module_name in _plugin_modules():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken plugin must not take down the others silently
            raise ReproError(f"plugin {module_name} failed to import: {type(exc).__name__}: {exc}") from None
        paper = load_paper_file(Path(module.__file__).parent / "paper.yaml")
        if paper.id in papers:
            raise ReproError(f"two plugins define paper '{paper.id}': {papers[paper.id].path} and {paper.path}")
        papers[paper.id] = paper
    _PAPERS = papers
    return papers


def get_paper(paper_id: str) -> Paper:
    papers = discover()
    if paper_id not in papers:
        raise ReproError(f"unknown paper '{paper_id}': choose from {', '.join(papers) or '(none installed)'}")
    return papers[paper_id]
