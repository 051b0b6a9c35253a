"""Tests of the configuration JSON helpers (``socmap._config_io``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from socmap._config_io import config_from_dict, config_to_dict
from socmap.errors import ConfigError


@dataclass(frozen=True)
class _Cfg:
    widths: tuple[int, ...] = (4, 2)
    rate: float = 0.1

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"rate {self.rate!r} < 0")


def test_a_config_round_trips_through_json_with_its_format():
    doc = json.loads(json.dumps(config_to_dict(_Cfg((8, 4, 2), 0.5), "cfg/1")))
    assert doc == {"widths": [8, 4, 2], "rate": 0.5, "format": "cfg/1"}
    back = config_from_dict(_Cfg, {**doc, "widths": tuple(doc["widths"])}, "cfg/1", "test config")
    assert back == _Cfg((8, 4, 2), 0.5)
    assert config_from_dict(_Cfg, {"rate": 0.2}, "cfg/1", "test config") == _Cfg(rate=0.2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "cfg/2"}, r"test config format 'cfg/2' is not 'cfg/1'; re-save"),
        ([1, 2], r"test config format 'list' is not 'cfg/1'"),
        ({"rates": 0.2}, r"unknown keys \['rates'\]; allowed: \['rate', 'widths'\]"),
        ({"rate": -1.0}, r"test config is malformed \(rate -1\.0 < 0\); re-save the model"),
    ],
)
def test_a_foreign_or_broken_config_is_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_Cfg, data, "cfg/1", "test config")
