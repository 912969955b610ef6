"""What a workload measured, its target, and the table and JSON they end up in."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One measured figure of one workload on one backend.

    ``higher_is_better`` says which way ``project`` should move; ``ratio`` is
    project over floor for rates and floor over project for times, so above 1 is
    always "faster than the floor".
    """

    workload: str
    backend: str
    metric: str
    unit: str
    project: float
    floor: float | None = None
    higher_is_better: bool = True
    target: str = ""
    passed: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.floor or not self.project:
            return None
        return self.project / self.floor if self.higher_is_better else self.floor / self.project

    def check_ratio(self, at_least: float) -> Result:
        """Set the target "ratio >= at_least" and whether it is met."""
        self.target = f">= {at_least}x floor"
        self.passed = self.ratio is not None and self.ratio >= at_least
        return self

    def check_value(self, limit: float) -> Result:
        """Set the target "project below/above ``limit`` units" and whether it is met."""
        if self.higher_is_better:
            self.target, self.passed = f">= {limit:g} {self.unit}", self.project >= limit
        else:
            self.target, self.passed = f"< {limit:g} {self.unit}", self.project < limit
        return self


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: list[Result], quick: bool) -> str:
    """The results as a Markdown table (it reads as plain text too)."""
    head = ["workload", "backend", "metric", "project", "floor", "ratio", "target", "result"]
    rows = []
    for r in results:
        verdict = "-" if r.passed is None else ("pass" if r.passed else "FAIL")
        if quick and r.passed is not None:
            verdict = "(quick)"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        rows.append(
            [
                r.workload,
                r.backend,
                f"{r.metric} ({r.unit})",
                _num(r.project),
                _num(r.floor),
                ratio,
                r.target or "-",
                verdict,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join([line, rule, *body])


def write_json(path: str, results: list[Result], meta: dict[str, Any]) -> None:
    """Write the run's machine description and every result to ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    payload = {"meta": meta, "results": [{**asdict(r), "ratio": r.ratio} for r in results]}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(payload, out, indent=2, default=str)
        out.write("\n")
