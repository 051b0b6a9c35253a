"""Tests of the torch-free method names (socmap.model.methods)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from socmap.errors import ConfigError
from socmap.model import methods


def test_names_agree_with_the_estimators() -> None:
    from socmap.model import transfer

    assert sorted(transfer.STRATEGIES) == sorted(methods.STRATEGY_NAMES)
    assert tuple(transfer.NETWORK_METHODS) == methods.NETWORK_METHOD_NAMES
    assert set(methods.AUTO_CANDIDATES) <= set(methods.TABLE_METHODS)
    assert set(methods.BUNDLE_METHODS) <= set(methods.BASELINES)
    assert methods.AUTO_NETWORK in methods.STRATEGY_NAMES


def test_a_runs_strategies_are_the_bundle_strategies() -> None:
    from typing import get_args

    from socmap.pipeline.config import ModelStep

    allowed = get_args(ModelStep.model_fields["strategy"].annotation)
    assert sorted(allowed) == sorted(methods.BUNDLE_STRATEGIES)
    for name in methods.method_names():
        if name not in allowed:
            with pytest.raises(ConfigError):
                methods.check_bundle_strategy(name)


def test_importing_the_names_loads_no_torch() -> None:
    code = "import sys, socmap.model.methods; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("magic", r"strategy 'magic' is unknown; choose one of \['auto', 'rf'"),
        ("blend", "gives no model a bundle can hold"),
        ("depthwise", "gives no model a bundle can hold"),
        ("global", "gives no model a bundle can hold"),
    ],
)
def test_a_strategy_a_bundle_cannot_hold_is_refused(strategy: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        methods.check_bundle_strategy(strategy)


@pytest.mark.parametrize(
    "strategy", ["auto", "rf", "stacked", "prior-residual", "l2sp", "instances"]
)
def test_a_bundle_strategy_passes(strategy: str) -> None:
    assert methods.check_bundle_strategy(strategy) == strategy


def test_no_method_is_refused_with_an_example() -> None:
    with pytest.raises(ConfigError, match=r"no method given; .* e\.g\. rf,rf-log,auto"):
        methods.check_methods([])
