"""drdrill's own bug exits 70, never 2 ("bad input"): through the CLI entry point
(drdrill.commands.main.main) with a core function patched in-process to raise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from drdrill.commands import main as cli_main
from drdrill.engine import runner

pytestmark = pytest.mark.integration
DRILLS = Path(__file__).resolve().parent.parent / "fixtures" / "drills"


class InjectedBug(RuntimeError):
    pass


def _explode(*_args: object, **_kwargs: object) -> object:
    raise InjectedBug("injected by the test")


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["drdrill", *argv])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    return int(done.value.code or 0)


def test_bug_inside_a_run_exits_70_with_error_txt(local_inventory: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "execute", _explode)  # the step loop itself fails
    runs = tmp_path / "runs"
    code = _main(["run", str(DRILLS / "flag-failover.yml"), "-i", str(local_inventory),
                  "--yes", "--json", "--runs-dir", str(runs)], monkeypatch)
    assert code == 70
    (run_dir,) = list(runs.iterdir())
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "error"
    text = (run_dir / "error.txt").read_text()
    assert "Traceback" in text and "InjectedBug: injected by the test" in text
    assert "_explode" in text  # the real frame, not a summary


def test_bug_outside_a_run_exits_70_and_says_where(local_inventory: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "prepare_inputs", _explode)  # before any run dir exists
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    code = _main(["run", str(DRILLS / "flag-failover.yml"), "-i", str(local_inventory),
                  "--yes", "--runs-dir", str(tmp_path / "runs")], monkeypatch)
    assert code == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "InjectedBug" in err
    (saved,) = list(tmp_path.glob("drdrill-error-*.txt"))
    assert str(saved) in err
    assert "InjectedBug: injected by the test" in saved.read_text()
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


SERVICE_DOWN = """\
version: 1
name: service-down
objectives: {rto: 20s, rpo: 5s}
roles: {primary: primary}
service:
  interval: 200ms
  probe:
    type: postgres
    dsn: "host=127.0.0.1,127.0.0.1 port=57391,57392 dbname=postgres user=postgres \\
      target_session_attrs=read-write connect_timeout=2"
    query: "select 1"
    timeout: 2s
steps:
  - name: never runs
    playbook: flag.yml
    role: primary
    vars: {flag: ran}
    timeout: 60s
"""


def test_service_down_at_start_exits_2_naming_both_endpoints(
        local_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    runbook = tmp_path / "drills" / "service-down.yml"
    runbook.parent.mkdir()
    runbook.write_text(SERVICE_DOWN)
    (tmp_path / "playbooks").symlink_to(DRILLS.parent / "playbooks")
    runs = tmp_path / "runs"
    code = _main(["run", str(runbook), "-i", str(local_inventory), "--yes",
                  "--runs-dir", str(runs)], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "service is down" in err
    assert "127.0.0.1:57391" in err and "127.0.0.1:57392" in err  # each endpoint, not the last
    assert not runs.exists() or not list(runs.iterdir())  # no run pollutes history
