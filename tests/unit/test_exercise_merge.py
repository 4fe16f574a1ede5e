"""Joint exercise: signing and merging on generated fixture runs (no lab). 20 simulated
participants, each with its own key; the expected matrix is written down here from how
each run was generated, not computed by the code under test."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

import fixtures.make_fixture_run as fx
from drdrill.exercise.keys import keygen, load_private, read_public_file
from drdrill.exercise.manifest import (
    DEFAULT_CHECKS,
    Manifest,
    Participant,
    load_manifest,
    write_manifest,
)
from drdrill.exercise.merge import merge_results
from drdrill.exercise.report import report_document, write_reports
from drdrill.exercise.signing import sign_run
from drdrill.journal.record import build_record, write_record
from drdrill.journal.store import JournalWriter, read_events
from drdrill.journal.verify import verify_run

EXERCISE = "ex-2026-q1"
START = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)
# the fixture's steps that provide the common checks
CHECKS = {"reach_backup_site": "wait for service", "test_transaction": "repoint service",
          "verify_data": "verify data"}


def make_manifest(tmp: Path, names: list[str]) -> tuple[Manifest, dict[str, Path]]:
    keys: dict[str, Path] = {}
    people = []
    for name in names:
        key, pub = keygen(name, tmp / "keys")
        keys[name] = key
        people.append(Participant(name, read_public_file(pub)))
    manifest = Manifest(tmp / "exercise.yml", EXERCISE, "exchange primary site lost",
                        START, "drill", datetime(2026, 3, 14, 8, 0, tzinfo=UTC),
                        datetime(2026, 3, 14, 12, 0, tzinfo=UTC), 30.0, 0.0,
                        DEFAULT_CHECKS, tuple(people))
    write_manifest(manifest, manifest.path)
    return load_manifest(manifest.path), keys


def exercise_run(runs: Path, participant: str, key: Path, *, exercise: str = EXERCISE,
                 started: datetime = START, lost: int = 0, restored: float = 29.5,
                 sign: bool = True) -> Path:
    """A fixture run stamped as the participant's exercise run (journal rewritten with the
    stamp in run_started, record derived again), then signed."""
    run_dir = fx.make_run(runs, f"20260314T090000Z-{participant}-{exercise}",
                          started=started, lost=lost, restored=restored)
    events = read_events(run_dir / "journal.jsonl")
    stamp = {"id": exercise, "participant": participant, "checks": CHECKS}
    events[0] = dataclasses.replace(events[0], data={**events[0].data, "exercise": stamp})
    (run_dir / "journal.jsonl").unlink()
    writer = JournalWriter(run_dir / "journal.jsonl")
    for event in events:
        writer.handle(event)
    writer.close()
    write_record(run_dir, build_record(events, writer.last_hash))
    if sign:
        sign_run(run_dir, load_private(key))
    return run_dir


def flip_one_byte(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) >= 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("exercise")
    names = [f"firm-{n:02d}" for n in range(1, 21)]
    manifest, keys = make_manifest(tmp, names)
    runs = tmp / "runs"
    sources: dict[str, Path] = {}
    # 01-12: every check ok (RTO 17.5 s <= 30 s, nothing lost)
    for name in names[:12]:
        sources[name] = exercise_run(runs, name, keys[name])
    # 13-14: two acknowledged writes lost -> verify_data and rpo failed
    for name in names[12:14]:
        sources[name] = exercise_run(runs, name, keys[name], lost=2)
    # 15: service back at 52.5 s -> RTO 40.5 s > 30 s failed
    sources["firm-15"] = exercise_run(runs, "firm-15", keys["firm-15"], restored=52.5)
    # 16: tampered record (one byte), 17: signed with firm-01's key, 18: another exercise,
    # 19: outside the window, 20: unsigned
    tampered = exercise_run(runs, "firm-16", keys["firm-16"])
    flip_one_byte(tampered / "record.json", b'"operator": "alice"', b'"operator": "alicf"')
    sources["firm-16"] = tampered
    sources["firm-17"] = exercise_run(runs, "firm-17", keys["firm-01"])
    sources["firm-18"] = exercise_run(runs, "firm-18", keys["firm-18"], exercise="ex-other")
    sources["firm-19"] = exercise_run(runs, "firm-19", keys["firm-19"],
                                      started=datetime(2026, 3, 15, 9, 0, tzinfo=UTC))
    sources["firm-20"] = exercise_run(runs, "firm-20", keys["firm-20"], sign=False)
    duplicate = tmp / "dup" / "firm-02-again"
    shutil.copytree(sources["firm-02"], duplicate)
    merged = merge_results(manifest, [*sources.values(), duplicate])
    return {"tmp": tmp, "manifest": manifest, "sources": sources, "merged": merged,
            "duplicate": duplicate, "names": names}


def test_merge_refuses_exactly_the_bad_results_each_with_its_reason(twenty: dict) -> None:
    merged, sources = twenty["merged"], twenty["sources"]
    refused = {r.source: (r.category, r.detail) for r in merged.refused}
    assert set(refused) == {str(sources[f"firm-{n}"]) for n in (16, 17, 18, 19, 20)} | {
        str(twenty["duplicate"])}
    assert refused[str(sources["firm-16"])][0] == "tampered"
    assert "record.json" in refused[str(sources["firm-16"])][1]
    assert refused[str(sources["firm-17"])][0] == "wrong key"
    assert refused[str(sources["firm-18"])][0] == "foreign"
    assert "ex-other" in refused[str(sources["firm-18"])][1]
    assert refused[str(sources["firm-19"])][0] == "out of window"
    assert refused[str(sources["firm-20"])][0] == "unsigned"
    assert refused[str(twenty["duplicate"])][0] == "duplicate"
    assert [r.participant for r in merged.results] == twenty["names"][:15]


def test_merge_reports_exactly_the_right_matrix(twenty: dict) -> None:
    doc = report_document(twenty["merged"])
    matrix = {row["participant"]: {c: v["outcome"] for c, v in row["checks"].items()}
              for row in doc["matrix"]}
    all_ok = dict.fromkeys(("reach_backup_site", "test_transaction", "verify_data", "rto",
                            "rpo"), "ok")
    expected = {f"firm-{n:02d}": dict(all_ok) for n in range(1, 13)}
    for name in ("firm-13", "firm-14"):
        expected[name] = {**all_ok, "verify_data": "failed", "rpo": "failed"}
    expected["firm-15"] = {**all_ok, "rto": "failed"}
    for n in range(16, 21):  # refused: no accepted result
        expected[f"firm-{n}"] = dict.fromkeys(all_ok, "missing")
    assert matrix == expected
    rows = {row["participant"]: row for row in doc["matrix"]}
    assert rows["firm-01"]["rto_s"] == pytest.approx(17.5)  # restored 29.5 - T0 12.0
    assert rows["firm-15"]["rto_s"] == pytest.approx(40.5)
    agg = doc["aggregate"]
    assert agg["participants"] == 20 and agg["results_accepted"] == 15
    assert agg["completed_pct"]["reach_backup_site"] == 75.0
    assert agg["completed_pct"]["verify_data"] == 65.0  # 13 of 20
    assert agg["completed_pct"]["rto"] == 70.0  # 14 of 20
    assert agg["rto_s"]["n"] == 15 and agg["rto_s"]["max"] == pytest.approx(40.5)
    assert agg["rto_s"]["median"] == pytest.approx(17.5)


def test_reports_written_and_anonymised_variant_names_no_one(twenty: dict) -> None:
    out = twenty["tmp"] / "report" / "report.html"
    written = write_reports(twenty["merged"], out)
    assert {p.name for p in written} == {f"report{a}.{s}" for a in ("", ".anon")
                                         for s in ("html", "json", "csv")}
    full = out.read_text()
    assert "firm-13" in full and "wrong key" in full
    for anon in (p for p in written if ".anon." in p.name):
        text = anon.read_text()
        assert "firm-" not in text and "alice" not in text and "/runs/" not in text
        assert "P20" in text
    csv_rows = (out.parent / "report.anon.csv").read_text().splitlines()
    assert len(csv_rows) == 21 and csv_rows[0].startswith("participant,status,rto_s")
    anon_doc = json.loads((out.parent / "report.anon.json").read_text())
    assert sorted(r["checks"]["rto"]["outcome"] for r in anon_doc["matrix"]).count("failed") == 1
    for page in (full, (out.parent / "report.anon.html").read_text()):
        lowered = page.lower()  # self-contained: nothing fetched from anywhere
        assert "<script" not in lowered and "src=" not in lowered and "href=" not in lowered
        assert "http://" not in lowered and "https://" not in lowered


def test_one_byte_edit_fails_verify_and_merge(tmp_path: Path) -> None:
    manifest, keys = make_manifest(tmp_path, ["solo"])
    run_dir = exercise_run(tmp_path / "runs", "solo", keys["solo"])
    assert verify_run(run_dir).intact
    assert merge_results(manifest, [run_dir]).refused == ()
    flip_one_byte(run_dir / "record.json", b'"status": "passed"', b'"status": "passeD"')
    problems = verify_run(run_dir).problems
    assert any("record.sig" in p and "signature does not match" in p for p in problems)
    merged = merge_results(manifest, [run_dir])
    assert merged.results == () and merged.refused[0].category == "tampered"


def test_signature_alone_catches_a_consistent_rewrite(tmp_path: Path) -> None:
    """Re-deriving record.json and the journal by hand keeps verify's chain checks happy;
    only the signature, made with a key the editor does not hold, tells."""
    manifest, keys = make_manifest(tmp_path, ["solo"])
    run_dir = exercise_run(tmp_path / "runs", "solo", keys["solo"])
    sig = (run_dir / "record.sig").read_bytes()
    exercise_run(tmp_path / "runs2", "solo", keys["solo"], restored=40.0, sign=False)
    forged = tmp_path / "runs2" / run_dir.name
    (forged / "record.sig").write_bytes(sig)
    problems = verify_run(forged).problems
    assert problems and all("record.sig" in p for p in problems)
    assert merge_results(manifest, [forged]).refused[0].category == "tampered"


def test_bundle_results_merge_like_run_dirs(tmp_path: Path) -> None:
    from drdrill.report.bundle import build_bundle

    manifest, keys = make_manifest(tmp_path, ["solo"])
    run_dir = exercise_run(tmp_path / "runs", "solo", keys["solo"])
    bundle = build_bundle(run_dir, tmp_path / "solo.tar.gz")
    merged = merge_results(manifest, [bundle])
    assert merged.refused == () and merged.results[0].participant == "solo"
