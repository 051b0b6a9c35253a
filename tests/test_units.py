"""The shared constants: known values, and one definition each."""

from __future__ import annotations

import ast
from pathlib import Path

from scipy import stats

from socmap import units

SRC = Path(__file__).resolve().parents[1] / "src" / "socmap"


def test_known_values() -> None:
    assert abs(units.Z90 - 1.6448536269514722) < 1e-15
    assert abs(units.Z95 - 1.959963984540054) < 1e-15
    assert abs(units.Z90 - stats.norm.ppf(0.95)) < 1e-12
    assert abs(units.CO2_PER_C * 12 - 44) < 1e-12
    assert units.BD_RANGE == (0.05, 2.65)
    assert units.STATS == ("mean", "sd", "q05", "q50", "q95")


def test_each_constant_is_assigned_once_in_the_package() -> None:
    found: dict[str, list[str]] = {name: [] for name in units.__all__}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                node.targets if isinstance(node, ast.Assign)
                else [node.target] if isinstance(node, ast.AnnAssign) else []
            )  # fmt: skip
            for t in targets:
                if isinstance(t, ast.Name) and t.id.lstrip("_") in found:
                    found[t.id.lstrip("_")].append(str(path.relative_to(SRC)))
    assert found == {name: ["units.py"] for name in units.__all__}
