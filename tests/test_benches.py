"""Every bench still runs: each script in bench/ in its --short mode, as a subprocess.

Only that it exits 0 and prints its figures (parsed from the lines it prints) is checked;
the figures of a smoke run on a busy test machine mean nothing. A new bench needs a
parser here, or test_every_bench_has_a_parser fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from settings import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "bench"
BENCHES = sorted(p for p in BENCH_DIR.glob("*.py") if 'if __name__ == "__main__"' in p.read_text())
NUMBER = r"(\d+(?:\.\d+)?)"


def table_rows(output: str) -> dict[str, list[float]]:
    """The markdown table rows a bench prints: name -> its numeric columns."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 1 and re.fullmatch(NUMBER, cells[1]):
            rows[cells[0]] = [float(cell) for cell in cells[1:]]
    return rows


def check_percentiles(name: str, p50: float, p95: float, p99: float) -> None:
    assert 0 < p50 <= p95 <= p99, f"{name}: p50 {p50}, p95 {p95}, p99 {p99}"


def intake_storm(output: str) -> None:
    rows = table_rows(output)
    assert len(rows) == 2, output  # through the intake, and the floor
    for name, (per_second, *cuts) in rows.items():
        assert per_second > 0, name
        check_percentiles(name, *cuts)
    assert re.search(rf"hand-over histogram: {NUMBER} ms mean over \d+", output), output


def alert_to_page(output: str) -> None:
    rows = table_rows(output)
    assert len(rows) == 2, output  # alert to page, and the floor
    for name, (samples, *cuts) in rows.items():
        assert samples == 5, name
        check_percentiles(name, *cuts)
    ratio = re.search(rf"p95 ratio alert-to-page / floor: {NUMBER}", output)
    assert ratio and float(ratio[1]) > 0, output
    rss = re.search(rf"worker RSS: {NUMBER} MB .* {NUMBER} MB after its first incident", output)
    assert rss and 10 < float(rss[2]) <= float(rss[1]) + 20, output  # a Python process with the SDK loaded
    incidents = re.search(r"PagerDuty emulator: (\d+) incidents from (\d+) triggers", output)
    assert incidents and int(incidents[1]) == 7, output  # 5 measured + 2 warm-up, one page each


def incident_budget(output: str) -> None:
    rollback = re.search(r"resolved by rollback\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", output)
    assert rollback, output
    events, activities, timers, tasks = map(int, rollback.groups())
    assert events > activities > 0 and tasks > 0, output
    assert re.search(r"budget for a rollback: .* \((within|OVER)\)", output), output


def scaling_budget(output: str) -> None:
    rows = table_rows(output)
    assert "up and back" in rows, output
    events, activities, timers, runs, largest = rows["up and back"][:5]
    assert events >= largest > activities > 0 and timers > 0 and runs >= 1, output
    assert "up and back: at-baseline" in output, output
    assert re.search(r"budget: no single run past .* \((within|OVER)\)", output), output


PARSERS: dict[str, Callable[[str], None]] = {
    "intake_storm": intake_storm,
    "alert_to_page": alert_to_page,
    "incident_budget": incident_budget,
    "scaling_budget": scaling_budget,
}


def test_every_bench_has_a_parser() -> None:
    assert {p.stem for p in BENCHES} == set(PARSERS)


@pytest.mark.parametrize("script", BENCHES, ids=lambda p: p.stem)
def test_bench_runs_in_short_mode(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--short"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"{script.name} --short exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    PARSERS[script.stem](result.stdout)
