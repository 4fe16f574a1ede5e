"""``drdrill verify RUN``: exit 0 when the evidence is intact, 1 when not."""

from __future__ import annotations

from pathlib import Path

import click

from drdrill.commands.options import resolve_run_dir, runs_dir_option
from drdrill.errors import EXIT_MISSED, EXIT_OK
from drdrill.journal.verify import verify_run


@click.command()
@click.argument("run")
@runs_dir_option
def command(run: str, runs_dir: Path) -> int:
    """Check RUN's evidence: journal hash chain, record.json against the journal, artifact
    checksums. RUN is a run id, a run directory, or an evidence bundle (.tar.gz)."""
    if run.endswith((".tar.gz", ".tgz")) and Path(run).is_file():
        from drdrill.report.bundle import verify_bundle

        problems = verify_bundle(Path(run))
        label = run
    else:
        run_dir = resolve_run_dir(run, runs_dir)
        report = verify_run(run_dir)
        problems, label = report.problems, f"{run_dir} ({report.lines} journal lines)"
    if problems:
        for problem in problems:
            click.echo(f"TAMPERED: {problem}", err=True)
        return EXIT_MISSED
    click.echo(f"intact: {label}")
    return EXIT_OK
