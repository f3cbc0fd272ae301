"""The gate's ``--out`` handling (contract v1.4 section 9): a fresh, empty store for every run; the
gate removes only what it wrote and refuses a directory it did not write unless forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowgate.harness.gate import outdir


def _earlier_run(out: Path) -> None:
    """What a gate run leaves: its outputs, a store with data, its manifest."""
    out.mkdir()
    (out / "store").mkdir()
    (out / "store" / "reference.db").write_bytes(b"seeded command ids")
    (out / "history.jsonl").write_text("{}\n")
    (out / "impl-0.log").write_text("log\n")
    outdir.record(out, kept=())


def test_a_missing_or_empty_out_is_used_as_it_is(tmp_path: Path) -> None:
    assert outdir.prepare(tmp_path / "new") == frozenset()
    assert (tmp_path / "new").is_dir()
    assert outdir.prepare(tmp_path / "new") == frozenset()


def test_an_earlier_runs_out_is_cleared_of_what_it_wrote_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "gate"
    _earlier_run(out)
    (out / "notes.txt").write_text("mine")  # written by the user after the run: not the gate's
    kept = outdir.prepare(out)
    assert kept == {"notes.txt"}
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert not (out / "store").exists()


def test_a_foreign_non_empty_out_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    (out / "history.jsonl").write_text("not the gate's, but its name")
    (out / "store").mkdir()
    (out / "store" / "old.db").write_bytes(b"old")
    with pytest.raises(outdir.OutDirInUse, match="--force"):
        outdir.prepare(out)
    assert (out / "store" / "old.db").exists()  # nothing touched
    assert outdir.prepare(out, force=True) == {"thesis.tex"}
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_the_manifest_lists_what_the_run_created_and_never_what_it_kept(tmp_path: Path) -> None:
    out = tmp_path / "gate"
    out.mkdir()
    (out / "keep.md").write_text("x")
    kept = outdir.prepare(out, force=True)
    (out / "verdicts.txt").write_text("v")
    outdir.record(out, kept)
    (out / "store").mkdir()
    assert outdir.prepare(out) == {"keep.md"}
    assert sorted(p.name for p in out.iterdir()) == ["keep.md"]


def test_a_manifest_cannot_point_outside_out(tmp_path: Path) -> None:
    out = tmp_path / "gate"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / outdir.MANIFEST).write_text('{"entries": ["../victim.txt", "/etc/passwd", ".."]}')
    outdir.prepare(out)
    assert victim.read_text() == "keep me"


def test_run_gate_refuses_a_foreign_out_as_a_usage_error_before_provisioning(tmp_path: Path) -> None:
    from flowgate.harness.gate.driver import run_gate

    out = tmp_path / "mine"
    out.mkdir()
    (out / "paper.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match="not written by a gate run"):
        run_gate("true", out_dir=out, endpoint_url="http://127.0.0.1:9")
    assert [p.name for p in out.iterdir()] == ["paper.pdf"]
