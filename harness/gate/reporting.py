"""JUnit XML and plain Allure result files for a gate run (no pytest needed: the gate runs in
any CI as a command). One test case per checker; the history and the table are attached."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from flowgate.harness.checkers.model import Verdict


def write_junit(
    path: Path,
    verdicts: Sequence[Verdict],
    *,
    suite: str,
    duration: float,
    properties: dict[str, str],
    skipped: Mapping[str, str] | None = None,
) -> Path:
    """One test case per verdict; each check in ``skipped`` (name -> why) is a ``<skipped/>`` case,
    so a check that was not run is never reported as passed."""
    skipped = skipped or {}
    failures = sum(1 for v in verdicts if not v.valid)
    tests = len(verdicts) + len(skipped)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="flowgate-gate" tests="{tests}" failures="{failures}" time="{duration:.1f}">',
        f'  <testsuite name={quoteattr(suite)} tests="{tests}" failures="{failures}" '
        f'errors="0" skipped="{len(skipped)}" time="{duration:.1f}">',
        "    <properties>",
    ]
    lines += [f"      <property name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in properties.items()]
    lines.append("    </properties>")
    for found in verdicts:
        lines.append(f'    <testcase classname="flowgate.gate" name={quoteattr(found.checker)} time="0">')
        if not found.valid:
            kinds = ", ".join(f"{k} x{n}" for k, n in found.kinds().items())
            detail = "\n".join(str(a) for a in found.anomalies[:50])
            lines.append(
                f'      <failure message={quoteattr(kinds)} type="anomaly">{escape(detail)}</failure>'
            )
        lines.append(f"      <system-out>{escape(json.dumps(found.stats, default=str))}</system-out>")
        lines.append("    </testcase>")
    for check, why in sorted(skipped.items()):
        lines.append(f'    <testcase classname="flowgate.gate" name={quoteattr(check)} time="0">')
        lines.append(f"      <skipped message={quoteattr(why)}/>")
        lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_allure(
    results_dir: Path,
    verdicts: Sequence[Verdict],
    *,
    implementation: str,
    backend: str,
    profile: str,
    seed: int,
    table: str,
    history_path: Path,
    started: float,
    stopped: float,
    extra_attachments: Sequence[tuple[str, Path, str, str]] = (),
) -> Path:
    """allure-python-commons style ``*-result.json`` files: epic Gate, one result per checker.
    ``extra_attachments`` (name, file, mime type, extension) go on every result (e.g. the hostile
    inputs' per-kind table)."""
    results_dir.mkdir(parents=True, exist_ok=True)

    def attach(name: str, source: Path | str, mime: str, ext: str) -> dict[str, str]:
        target = results_dir / f"{uuid.uuid4()}-attachment.{ext}"
        target.write_text(
            source.read_text(encoding="utf-8") if isinstance(source, Path) else source, encoding="utf-8"
        )
        return {"name": name, "source": target.name, "type": mime}

    history_att = attach("history.jsonl", history_path, "text/plain", "txt")
    table_att = attach("verdicts", table, "text/plain", "txt")
    extra = [attach(name, path, mime, ext) for name, path, mime, ext in extra_attachments if path.exists()]
    replay = f"flowgate gate --impl {json.dumps(implementation)} --profile {profile} --seed {seed} --backend {backend}"
    for found in verdicts:
        result: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "historyId": f"gate:{implementation}:{profile}:{found.checker}",
            "name": f"gate {profile}: {found.checker}",
            "fullName": f"flowgate.gate.{profile}.{found.checker}",
            "status": "passed" if found.valid else "failed",
            "statusDetails": {
                "message": "; ".join(str(a) for a in found.anomalies[:5]),
                "trace": "\n".join(str(a) for a in found.anomalies),
            }
            if not found.valid
            else {},
            "stage": "finished",
            "start": int(started * 1000),
            "stop": int(stopped * 1000),
            "labels": [
                {"name": "epic", "value": "Gate"},
                {"name": "feature", "value": found.checker},
                {"name": "story", "value": profile},
                {"name": "backend", "value": backend},
                {"name": "implementation", "value": implementation},
                {"name": "suite", "value": "flowgate gate"},
            ],
            "parameters": [
                {"name": "seed", "value": str(seed)},
                {"name": "backend", "value": backend},
                {"name": "profile", "value": profile},
            ],
            "attachments": [
                table_att,
                history_att,
                attach("stats", json.dumps(found.stats, default=str, indent=2), "application/json", "json"),
                attach("replay", replay, "text/plain", "txt"),
                *extra,
            ],
        }
        (results_dir / f"{result['uuid']}-result.json").write_text(
            json.dumps(result, indent=1), encoding="utf-8"
        )
    return results_dir


def now() -> float:
    return time.time()
