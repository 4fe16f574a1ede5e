"""``drdrill exercise keygen|init|merge``: the joint industry exercise, offline — keys,
the manifest, and the merged report built from the participants' signed result files."""

from __future__ import annotations

from pathlib import Path

import click

from drdrill.errors import EXIT_MISSED, EXIT_OK, BadInput
from drdrill.exercise.keys import keygen, read_public_file
from drdrill.exercise.manifest import (
    DEFAULT_CHECKS,
    Manifest,
    Participant,
    load_manifest,
    parse_time,
    write_manifest,
)
from drdrill.exercise.merge import merge_results
from drdrill.exercise.report import write_reports
from drdrill.runbook.durations import parse_duration


@click.group()
def command() -> None:
    """Joint industry exercise: one manifest, signed results, one merged report."""


@command.command("keygen")
@click.argument("name")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Directory for NAME.key (0600) and NAME.pub.")
def keygen_command(name: str, out_dir: Path) -> int:
    """Write an ed25519 key pair NAME.key / NAME.pub (the private key is never printed)."""
    key_path, pub_path = keygen(name, out_dir)
    click.echo(f"private key: {key_path} (keep it; 0600)")
    click.echo(f"public key:  {pub_path} (give it to the exercise coordinator)")
    return EXIT_OK


@command.command("init")
@click.option("--id", "exercise_id", required=True, help="Exercise id (e.g. ex-2026-q1).")
@click.option("--scenario", required=True, help="What is simulated, in one sentence.")
@click.option("--t0", required=True, help="The shared T0 (ISO 8601).")
@click.option("--window", required=True, metavar="START/END",
              help="When results may be produced (ISO 8601 / ISO 8601).")
@click.option("--participant", "participants", multiple=True, required=True,
              metavar="NAME=PUBKEY_FILE", help="A participant and its .pub file (repeat).")
@click.option("--rto", default="4h", show_default=True, help="The exercise's RTO objective.")
@click.option("--rpo", default="0s", show_default=True, help="The exercise's RPO objective.")
@click.option("--t0-source", type=click.Choice(["declared", "drill"]), default="declared",
              show_default=True, help="declared: every run measures from --t0; drill: from "
              "its own disaster step.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("exercise.yml"),
              show_default=True)
def init_command(exercise_id: str, scenario: str, t0: str, window: str,
                 participants: tuple[str, ...], rto: str, rpo: str, t0_source: str,
                 out: Path) -> int:
    """Write the manifest, the participants' public keys copied into it."""
    start, sep, end = window.partition("/")
    if not sep:
        raise BadInput(f"--window {window!r}: expected START/END")
    people = []
    for pair in participants:
        name, sep, pub = pair.partition("=")
        if not sep or not name:
            raise BadInput(f"--participant {pair!r}: expected NAME=PUBKEY_FILE")
        people.append(Participant(name, read_public_file(Path(pub))))
    try:
        rto_s, rpo_s = parse_duration(rto), parse_duration(rpo)
    except ValueError as exc:
        raise BadInput(f"--rto/--rpo: {exc}") from exc
    manifest = Manifest(out, exercise_id, scenario, parse_time(t0, "--t0"), t0_source,
                        parse_time(start, "--window start"), parse_time(end, "--window end"),
                        rto_s, rpo_s, DEFAULT_CHECKS, tuple(people))
    write_manifest(manifest, out)
    load_manifest(out)  # what was written passes its own schema and checks
    click.echo(f"ok: {out} (exercise {exercise_id}, {len(people)} participants)")
    return EXIT_OK


@command.command("merge")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--manifest", type=click.Path(path_type=Path),
              default=Path("exercise.yml"), show_default=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML report; .json, .csv and .anon.* beside it.")
def merge_command(results: tuple[Path, ...], manifest: Path, out: Path) -> int:
    """Merge RESULTS (run directories or bundles): verify each, refuse the bad ones naming
    the file and the reason, merge the rest. Exit 1 when any result was refused."""
    loaded = load_manifest(manifest)
    merged = merge_results(loaded, list(results))
    for refusal in merged.refused:
        click.echo(f"REFUSED: {refusal.source}: {refusal.category}: {refusal.detail}",
                   err=True)
    for path in write_reports(merged, out):
        click.echo(f"wrote {path}")
    click.echo(f"merged {len(merged.results)} of {len(results)} results "
               f"({len(loaded.participants)} participants)")
    return EXIT_MISSED if merged.refused else EXIT_OK
