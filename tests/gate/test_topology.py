from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flowgate.harness import topology

ROOT = Path(__file__).resolve().parents[2]


def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(topology.DEFAULT_TOPOLOGY.read_text())
    return loaded


def test_default_topology_parses_and_matches_its_schema() -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "topology.schema.json").read_text())
    jsonschema.validate(doc(), schema)
    topo = topology.load()
    assert topo.command_queue.name == "commands.fifo"
    assert topo.command_queue.fifo
    assert topo.command_queue.dlq_name == "commands-dlq.fifo"
    assert topo.event_topic.fifo
    assert topo.raw_message_delivery
    assert topo.kms_key
    assert topo.foreign_key


def test_overrides() -> None:
    topo = topology.load().with_overrides(visibility_timeout=3, max_receive_count=5, encrypted=False)
    assert topo.command_queue.visibility_timeout == 3
    assert topo.command_queue.max_receive_count == 5
    assert not topo.kms_key
    assert not topo.foreign_key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version 1"),
        (lambda d: d["command_queue"].update(name="commands"), "must end in .fifo"),
        (lambda d: d["command_queue"].update(name="bad name!.fifo"), "not a valid"),
        (lambda d: d["command_queue"]["dead_letter"].update(max_receive_count=0), "max_receive_count"),
        (lambda d: d.pop("event_topic"), "missing 'event_topic'"),
        (lambda d: d.update(prefix="UPPER"), "prefix"),
    ],
)
def test_invalid_topologies_are_refused(change: Any, message: str) -> None:
    broken = doc()
    change(broken)
    with pytest.raises(topology.TopologyError, match=message):
        topology.parse(broken)


def test_load_reports_the_file(tmp_path: Path) -> None:
    with pytest.raises(topology.TopologyError, match=r"missing\.yaml"):
        topology.load(tmp_path / "missing.yaml")
