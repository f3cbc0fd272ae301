"""The gate's output directory (``--out``) and the fresh store in it (contract v1.4 section 1).

Every run starts from an empty ``<out>/store`` (``FLOWGATE_IDEMPOTENCY_URL``): a store left by an
earlier run with the same seed holds the same command ids, so an implementation would take this
run's commands for duplicates. The gate therefore owns what it writes and nothing else:

* the gate records every entry it creates in ``--out`` in a manifest (:data:`MANIFEST`, written at
  the start of the run and completed at its end);
* a directory that is missing or empty is used as it is;
* a directory holding a manifest is an earlier gate run: the entries that manifest lists (and
  ``store/``) are removed, everything else in it is left alone;
* any other non-empty directory is refused (:class:`OutDirInUse`, exit code 2: a usage error)
  unless ``--force``: then only the names the gate writes (:data:`GATE_ENTRIES`, ``impl-*.log``)
  are removed before the run, and the rest is left alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

#: the manifest of the entries a gate run created in its ``--out``
MANIFEST = ".flowgate-gate-run.json"
#: the directory handed to the implementation as ``FLOWGATE_IDEMPOTENCY_URL``
STORE = "store"
#: what a gate run writes in ``--out`` (besides ``impl-<n>.log`` and ``impl-replay-<k>.log``)
GATE_ENTRIES = (
    STORE,
    "history.jsonl",
    "verdicts.txt",
    "verdicts.json",
    "hostile.md",
    "hostile.json",
    "junit.xml",
    "allure-results",
    "teardown-errors.txt",
)


class OutDirInUse(ValueError):
    """``--out`` holds files no gate run wrote (and ``--force`` was not given)."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _recorded(out_dir: Path) -> list[str] | None:
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    return [e for e in entries if isinstance(e, str)]


def _own(name: str) -> bool:
    """A top-level name of ``--out`` the gate itself writes."""
    return name in GATE_ENTRIES or (name.startswith("impl-") and name.endswith(".log")) or name == MANIFEST


def prepare(out_dir: Path, *, force: bool = False) -> frozenset[str]:
    """Make ``out_dir`` ready for a run with an empty ``store/`` (module docstring); returns the
    names present before the run that the gate left alone (they are never recorded as its own)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    present = {p.name for p in out_dir.iterdir()}
    if not present:
        return frozenset()
    recorded = _recorded(out_dir)
    if recorded is None and not force:
        raise OutDirInUse(
            f"--out {out_dir} is not empty and was not written by a gate run ({len(present)} entries, e.g. "
            f"{sorted(present)[0]!r}); choose an empty or new directory, or pass --force to remove only "
            "the files the gate writes there (store/, history.jsonl, verdicts.*, hostile.*, junit.xml, "
            "allure-results/, impl-*.log) and keep the rest"
        )
    # only plain names directly in out_dir: a manifest cannot point the gate anywhere else
    doomed = {n for n in (recorded or []) if "/" not in n and n not in ("", ".", "..")}
    if recorded is None:  # --force
        doomed = {n for n in present if _own(n)}
    doomed |= {STORE, MANIFEST}
    for name in doomed:
        _remove(out_dir / name)
    return frozenset(present - doomed)


def record(out_dir: Path, kept: Iterable[str]) -> None:
    """Write the manifest: every entry of ``out_dir`` except those ``kept`` from before the run."""
    kept = frozenset(kept)
    entries = sorted(p.name for p in out_dir.iterdir() if p.name not in kept and p.name != MANIFEST)
    entries = sorted({*entries, STORE})
    (out_dir / MANIFEST).write_text(json.dumps({"entries": entries}, indent=2) + "\n", encoding="utf-8")
