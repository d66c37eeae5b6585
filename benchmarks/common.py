"""What every benchmark shares: the result row, machine load, logging and a stopwatch.

A `Row` is one figure beside its baseline (measured in the same run) and their ratio; `target`
says which ratio or absolute value counts as good. Caches, settings, percentiles and eval
questions come from harness/common.py, shared with the tests.
Does not time anything itself.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.common import REPO

ARTIFACT = REPO / "artifacts" / "benchmarks.json"


@dataclass
class Row:
    """One measured figure, its baseline from the same run, and how it compares to the target."""

    benchmark: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline_value, when there is a baseline."""
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        """The row with its ratio, for the JSON artifact."""
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return out


@dataclass
class Result:
    """What one benchmark returns: table rows and free-form details for the JSON artifact."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews absolute figures, not ratios."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    """CPU count, memory and load, recorded beside the figures."""
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"cpus": os.cpu_count(), "mem_gb": round(mem_kb / 2**20, 1), "loadavg_start": loadavg(),
            "python": sys.version.split()[0]}


def log(message: str) -> None:
    """Progress on stderr; results go to stdout."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def stopwatch(samples: list[float]) -> Iterator[None]:
    """Append the block's duration in seconds to `samples`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        samples.append(time.perf_counter() - started)
