"""``report.md`` of a run: what was searched, the validated front, baselines, plots, exports."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search_space.config import counted
from search_space.files import atomic_write_text
from search_space.objectives import Objective, format_value


@dataclass(frozen=True)
class ReportInput:
    title: str
    summary: Sequence[str]  # bullet lines: space, data, supernet, search settings, timings
    objectives: Sequence[Objective]
    front: Sequence[Mapping[str, object]]  # rows: trial, arch, objective values, test accuracy, re-measured values
    front_columns: Sequence[tuple[str, str]]  # (key, header) of the front table
    baselines: Sequence[Mapping[str, object]] = ()
    baseline_columns: Sequence[tuple[str, str]] = ()
    plots: Sequence[Path] = ()
    exports: Sequence[tuple[str, Path]] = ()  # (what, folder)
    notes: Sequence[str] = field(default_factory=tuple)


def _cell(key: str, value: object) -> str:
    if isinstance(value, float):
        return format_value(key, value)
    return f"`{value}`" if key == "arch" else str(value)


def _table(rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str]]) -> str:
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(k, r.get(k, "")).replace("|", "\\|") for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_report(folder: Path, report: ReportInput) -> Path:
    parts = [f"# {report.title}", "", *[f"- {line}" for line in report.summary], ""]
    again = " and latency measured again" if any(k.endswith("_again") for k, _ in report.front_columns) else ""
    parts += [f"## Measured front ({counted(len(report.front), 'subnet')})", "",
              "Values measured during the search (validation split), then each front subnet validated: test-split "
              f"accuracy{again}.", "", _table(report.front, report.front_columns), ""]
    if report.baselines:
        parts += ["## Baselines", "", _table(report.baselines, report.baseline_columns), ""]
    if report.plots:
        parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in report.plots] + [""]
    if report.exports:
        links = [f"- {what}: [`{p.relative_to(folder)}`]({p.relative_to(folder)}/README.md)"
                 for what, p in report.exports]
        parts += ["## Exported subnets", ""] + links + [""]
    if report.notes:
        parts += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path
