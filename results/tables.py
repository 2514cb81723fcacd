"""``measured.csv`` and ``pareto.csv``: every measured arch, and the measured front."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from results.pareto import pareto_mask, to_min_form
from results.store import Record
from search_space.files import atomic_write_text
from search_space.objectives import Constraint, Objective, meets


def front_of(records: Sequence[Record], objectives: Sequence[Objective],
             constraints: Sequence[Constraint] = ()) -> list[Record]:
    """The measured, feasible, non-dominated records (ties kept), sorted by the first objective."""
    feasible = [r for r in records if meets(r.values, constraints)]
    if not feasible:
        return []
    mask = pareto_mask(to_min_form([r.values for r in feasible], objectives))
    front = [r for r, keep in zip(feasible, mask) if keep]
    first = objectives[0]
    return sorted(front, key=lambda r: r.values[first.name] * first.sign)


def records_csv(records: Sequence[Record], objectives: Sequence[Objective]) -> str:
    value_cols = [o.name for o in objectives]
    value_cols += sorted({k for r in records for k in r.values} - set(value_cols))
    meta_cols = sorted({k for r in records for k in r.meta})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", "arch", *value_cols, *meta_cols])
    for r in records:
        writer.writerow([r.number, r.arch, *(r.values.get(c, "") for c in value_cols),
                         *(r.meta.get(c, "") for c in meta_cols)])
    return out.getvalue()


def write_tables(folder: Path, records: Sequence[Record], objectives: Sequence[Objective],
                 constraints: Sequence[Constraint] = ()) -> None:
    atomic_write_text(folder / "measured.csv", records_csv(records, objectives))
    atomic_write_text(folder / "pareto.csv", records_csv(front_of(records, objectives, constraints), objectives))
