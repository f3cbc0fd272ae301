"""The gate's replay runs (contract section 7): after every instance stopped, the implementation
is started twice in replay mode for every entity of the run; each run's output must match, per
entity, what the probe saw live, and nothing may reach the topic meanwhile. Parsing and comparing
are pure (:mod:`flowgate.harness.gate.replay`); this module runs the processes and judges.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.gate.probe import Probe
from flowgate.harness.gate.replay import REPLAY, compare, live_events, parse_replay_output
from flowgate.harness.gate.state import RunState

#: A replay run must exit within this long (contract section 7).
REPLAY_TIMEOUT = 60.0


class Replayer:
    """Replays the run in ``state`` with ``argv`` (the implementation's command) and ``env`` (its
    environment, the cluster's); ``probe`` is drained after the runs to catch a replay that
    published."""

    def __init__(self, state: RunState, argv: list[str], env: dict[str, str], probe: Probe) -> None:
        self.s, self.argv, self.env, self.probe = state, argv, env, probe

    def verdict(self, capabilities: frozenset[str]) -> Verdict | None:
        """Run the implementation twice in replay mode (after every instance stopped) and compare
        each run, per entity, with what the probe saw live. ``None`` when replay is not declared
        (recorded in ``state.skipped``); ``capabilities``: what every first instance declared. Each run must exit 0 within :data:`REPLAY_TIMEOUT`."""
        if REPLAY not in capabilities:
            self.s.skipped["replay"] = "not run: the implementation did not declare the replay capability"
            return None
        entities = sorted({c.entity_id for c in self.s.plan.commands})
        live = live_events(self.s.history.ops, entities)
        watermark = len(self.s.history)
        anomalies: list[Anomaly] = []
        runs = 0
        for run in (1, 2):
            self.s.history.nemesis("replay", {"run": run, "entities": len(entities)})
            stdout, failure = self._run_replay(run, entities)
            runs += 1
            if failure:
                anomalies.append(Anomaly("replay-failed", f"replay run {run}: {failure}"))
                continue
            parsed = parse_replay_output(stdout)
            anomalies += [Anomaly("replay-failed", f"replay run {run}: {e}") for e in parsed.errors[:20]]
            anomalies += [
                Anomaly("replay-divergence", f"replay run {run}: {d}") for d in compare(live, parsed.events)
            ]
            self.s.history.nemesis(
                "replay_end", {"run": run, "events": parsed.lines, "errors": len(parsed.errors)}
            )
        self.probe.drain()
        published = [op.index for op in self.s.history.ops[watermark:] if op.f == "wire"]
        if published:
            anomalies.append(
                Anomaly(
                    "replay-published",
                    f"{len(published)} event(s) reached the topic while replay ran (replay must not publish)",
                    tuple(published[:20]),
                )
            )
        return Verdict("replay", not anomalies, anomalies, {"runs": runs, "entities": len(entities)})

    def _run_replay(self, run: int, entities: list[str]) -> tuple[str, str]:
        """One replay process: (stdout, failure; empty = exited 0 in time). Its stderr goes to
        ``impl-replay-<run>.log``; on timeout its process group is killed."""
        env = dict(self.env, FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES=",".join(entities))
        env["FLOWGATE_INSTANCE_ID"] = f"replay-{run}"
        with (self.s.out_dir / f"impl-replay-{run}.log").open("wb") as log:
            try:
                proc = subprocess.Popen(
                    self.argv, env=env, stdout=subprocess.PIPE, stderr=log, start_new_session=True
                )
            except OSError as exc:
                return "", f"cannot start: {exc}"
            try:
                out, _ = proc.communicate(timeout=REPLAY_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return "", f"did not exit within {REPLAY_TIMEOUT:.0f}s"
            text = out.decode("utf-8", "replace")
            log.write(b"--- stdout\n" + out)
        if proc.returncode != 0:
            return text, f"exited {proc.returncode} (must be 0); see impl-replay-{run}.log"
        return text, ""
