"""``drdrill report RUN``: a report of one run, derived from its journal and record only."""

from __future__ import annotations

from pathlib import Path

import click

from drdrill.commands.options import resolve_run_dir, runs_dir_option
from drdrill.errors import EXIT_OK, BadInput
from drdrill.report import DEFAULT_NAMES, TEXT_FORMATS, load_run, render, write_atomic

FORMATS = (*TEXT_FORMATS, "bundle")


@click.command()
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: self-contained timeline report; md: after-action report; json: the "
                   "record; junit: JUnit XML for CI; bundle: evidence .tar.gz with SHA256SUMS.")
@click.option("-o", "--output", metavar="FILE",
              help="Where to write ('-' for stdout, not for bundle). Default: "
                   "RUN/report.html, RUN/report.md, RUN/junit.xml, stdout for json, "
                   "./<run-id>.tar.gz for bundle.")
@click.option("--runbook-root", type=click.Path(file_okay=False, path_type=Path),
              help="bundle: where the record's relative runbook path resolves when the run "
                   "has no runbook/ snapshot (default: the current directory).")
@runs_dir_option
def command(run: str, fmt: str, output: str | None, runbook_root: Path | None,
            runs_dir: Path) -> int:
    """Write a report of RUN (a run id under --runs-dir or a run directory). Reports are
    rebuilt from journal.jsonl/record.json at any time; nothing live is consulted."""
    run_dir = resolve_run_dir(run, runs_dir)
    if fmt == "bundle":
        from drdrill.report.bundle import build_bundle

        if output == "-":
            raise BadInput("a bundle is a binary .tar.gz: it cannot go to stdout",
                           hint="give -o FILE.tar.gz")
        target = Path(output) if output else Path(f"{run_dir.resolve().name}.tar.gz")
        click.echo(str(build_bundle(run_dir, target, runbook_root)))
        return EXIT_OK
    record, events = load_run(run_dir)
    text = render(record, events, fmt)
    if output == "-" or (output is None and fmt not in DEFAULT_NAMES):
        click.echo(text, nl=False)
        return EXIT_OK
    path = Path(output) if output else run_dir / DEFAULT_NAMES[fmt]
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}") from exc
    click.echo(str(path))
    return EXIT_OK
