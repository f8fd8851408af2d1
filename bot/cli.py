"""The `safeguarding-bot` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bot.context import open_store
from bot.settings import SettingsError, load_settings
from storage.crypto import DataKeyError, generate_key
from storage.db import DatabaseUnavailable

app = typer.Typer(help="safeguarding-bot: report, route and follow up child-safeguarding concerns.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema and keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
from bot.teams.package import teams_app  # noqa: E402  (light: no Teams SDK import)
app.add_typer(teams_app, name="teams")


def fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def store_or_exit(upgrade: bool | None = None):
    try:
        return open_store(load_settings(), upgrade=upgrade)
    except (SettingsError, DataKeyError, DatabaseUnavailable) as exc:
        fail(str(exc))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (SQLite files upgrade themselves on use)."""
    store = store_or_exit(upgrade=True)
    from storage.db import current_revision
    typer.echo(f"database at revision {current_revision(store.engine)}")


@db_app.command("new-key")
def db_new_key() -> None:
    """Print a fresh random data key for SAFEGUARDING_DATA_KEY."""
    typer.echo(generate_key())


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit and chronology hash chains; exit 1 naming the first bad row."""
    from storage.chain import verify

    store = store_or_exit()
    with store.session() as s:
        problems = verify(s)
    if problems:
        for p in problems:
            typer.echo(f"TAMPERED {p}", err=True)
        raise typer.Exit(1)
    typer.echo("audit chain intact; chronology chain intact")


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(3978, help="Port to listen on."),
          no_worker: bool = typer.Option(False, "--no-worker",
                                         help="Do not run the nudge/outbox worker in this process "
                                              "(run `safeguarding-bot worker` separately)."),
          teams_playground: bool = typer.Option(False, "--teams-playground",
                                                help="Local Teams trial with Microsoft 365 Agents Playground: "
                                                     "accepts UNAUTHENTICATED requests, loopback only."),
          socket_mode: bool = typer.Option(False, "--socket-mode",
                                           help="Take Slack over Socket Mode (needs SLACK_APP_TOKEN); no public URL.")) -> None:
    """Serve Slack (POST /slack/events), Teams (POST /api/messages) and GET /healthz."""
    import uvicorn

    from bot.context import configure_logging
    from bot.server import create_app

    from bot.teams.config import teams_config

    settings = load_settings()
    configure_logging(settings.log_level)
    teams_config(settings, playground=teams_playground, host=host)  # refuse early, naming what is wrong
    from bot.slack import slack_config

    slack_config(settings, socket_mode=socket_mode)
    store = store_or_exit()
    from bot.worker import start_background_worker

    if teams_playground:  # the worker delivers through the server's own (credential-less) Teams app
        from bot.teams.delivery import enable_playground_delivery

        enable_playground_delivery()
    background = None if no_worker else start_background_worker(store, settings)
    uvicorn.run(create_app(settings, store, teams_playground=teams_playground, slack_socket_mode=socket_mode), host=host, port=port, log_level="warning",
                access_log=False)  # access logs could carry ids users typed; we log our own lines
    if background is not None:
        background.stop()


directory_app = typer.Typer(help="Schools, people and roles from a TOML file.", no_args_is_help=True)
roster_app = typer.Typer(help="Pupils from a school MIS export (CSV).", no_args_is_help=True)
app.add_typer(directory_app, name="directory")
app.add_typer(roster_app, name="roster")


@directory_app.command("load")
def directory_load(file: Path = typer.Argument(..., help="The trust's directory file (see examples/directory.toml).")) -> None:
    """Load a trust's directory; prints what was added, changed and removed. Safe to repeat."""
    from storage.directory import DirectoryError, load_directory

    store = store_or_exit()
    try:
        changes = load_directory(store, file)
    except DirectoryError as exc:
        fail("directory file refused, nothing loaded:\n" + "\n".join(f"  {p}" for p in exc.problems))
    for change in changes.changes:
        typer.echo(str(change))
    typer.echo(changes.summary())


@directory_app.command("show")
def directory_show() -> None:
    """List trusts, schools, people and their roles."""
    from storage.directory import describe_directory

    store = store_or_exit()
    with store.session() as s:
        lines = describe_directory(s)
    typer.echo("\n".join(lines) if lines else "no directory loaded yet (`safeguarding-bot directory load FILE`)")


@roster_app.command("import")
def roster_import(file: Path = typer.Argument(..., help="Pupil CSV as exported by the MIS (see examples/roster.csv)."),
                  school: str = typer.Option(..., "--school", help="Slug of the school the pupils belong to."),
                  strict: bool = typer.Option(False, "--strict", help="Import nothing if any row is bad.")) -> None:
    """Import pupils; exit 0 if every row was imported, 1 if some were skipped, 2 if refused."""
    from storage.roster import RosterError, import_roster

    store = store_or_exit()
    try:
        result = import_roster(store, school, file, strict=strict)
    except RosterError as exc:
        fail(f"refused, nothing imported: {exc}")
    for row in result.skipped:
        typer.echo(f"skipped {row}")
    typer.echo(result.summary())
    if not result.imported:
        raise typer.Exit(2)
    if result.skipped:
        raise typer.Exit(1)


@app.command("chat")
def chat(as_: str = typer.Option(..., "--as", help="Your email in the directory, e.g. teacher@demo.school")) -> None:
    """Report and handle concerns in the terminal (the demo school when no directory is loaded)."""
    from bot.console import run_chat
    from storage.demo import ensure_directory

    store = store_or_exit()
    if ensure_directory(store):
        typer.echo("No directory was loaded, so the built-in demo school is in use "
                   "(try teacher@demo.school, then dsl@demo.school).")
    raise typer.Exit(run_chat(store, as_))


from bot.cpfile_cli import register as _register_cpfile  # noqa: E402  (child protection file)
_register_cpfile(app)


nudges_app = typer.Typer(help="Reminders and escalations waiting to fire.", no_args_is_help=True)
app.add_typer(nudges_app, name="nudges")


@app.command("worker")
def worker_command(once: bool = typer.Option(False, "--once", help="Process everything due, then exit."),
                   now: str = typer.Option(None, "--now", help="With --once: the instant to run at, ISO 8601 with "
                                                               "a UTC offset, e.g. 2026-11-24T13:00:00Z."),
                   poll: float = typer.Option(5.0, "--poll", help="Seconds between passes when running on.")) -> None:
    """Fire due nudges and deliver the outbox; runs until stopped (SIGINT/SIGTERM) unless --once."""
    from bot.worker import run_command

    settings = load_settings()
    run_command(store_or_exit(), settings, once=once, now=now, poll=poll, fail=fail)


@nudges_app.command("list")
def nudges_list(as_json: bool = typer.Option(False, "--json", help="One JSON array."),
                limit: int = typer.Option(200, "--limit", help="At most this many, soonest first.")) -> None:
    """Pending nudges with their due times, kind, reference and recipients (no concern content)."""
    from bot.worker import list_command

    list_command(store_or_exit(), as_json=as_json, limit=limit)


def main() -> None:
    try:
        app()
    except (SettingsError, DataKeyError, DatabaseUnavailable) as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
