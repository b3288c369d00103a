"""Printing benchmark figures: a human table, or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    limit_name: str = ""
    limit: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.limit else self.value / self.limit


@dataclass
class Report:
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "figures": [
                {
                    "name": f.name,
                    "value": round(f.value, 3),
                    "unit": f.unit,
                    "limit_name": f.limit_name,
                    "limit": None if f.limit is None else round(f.limit, 3),
                    "ratio": None if f.ratio is None else round(f.ratio, 4),
                    "target": f.target,
                }
                for f in self.figures
            ],
            "notes": self.notes,
        }

    def render(self, as_json: bool) -> str:
        if as_json:
            return json.dumps(self.to_dict(), indent=2)
        lines = [self.title, "=" * len(self.title)]
        for f in self.figures:
            line = f"{f.name:38} {f.value:>14,.1f} {f.unit}"
            if f.limit is not None:
                line += f"   | {f.limit_name}: {f.limit:,.1f}   ratio {f.ratio:.3f}"
            if f.target:
                line += f"   [target {f.target}]"
            lines.append(line)
        for key, value in self.notes.items():
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)
