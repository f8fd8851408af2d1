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
          port: int = typer.Option(3978, help="Port to listen on.")) -> None:
    """Serve Slack (POST /slack/events), Teams (POST /api/messages) and GET /healthz."""
    import uvicorn

    from bot.context import configure_logging
    from bot.server import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    store = store_or_exit()
    uvicorn.run(create_app(settings, store), host=host, port=port, log_level="warning",
                access_log=False)  # access logs could carry ids users typed; we log our own lines


def main() -> None:
    try:
        app()
    except (SettingsError, DataKeyError, DatabaseUnavailable) as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
