"""CLI commands for the child protection file: chronology, export, transfer, import, report,
qa, retention and sar. Registered on the main app by ``register(app)`` (bot/cli.py)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Optional

import typer

export_app = typer.Typer(help="Export a child's file (HTML, PDF or the JSON transfer pack).", no_args_is_help=True)
transfer_app = typer.Typer(help="Move a child protection file to a new school.", no_args_is_help=True)
import_app = typer.Typer(help="Import a child protection file from another school.", no_args_is_help=True)
qa_app = typer.Typer(help="Quality assurance of closed concerns.", no_args_is_help=True)
retention_app = typer.Typer(help="Apply the retention policy.", no_args_is_help=True)

AS_HELP = "Your email in the directory (you must be in the safeguarding team)."


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _store():
    from bot.cli import store_or_exit

    return store_or_exit()


def _who(store, email: str) -> int:
    from flows.chronology import person_id_for
    from flows.errors import FlowError

    try:
        return person_id_for(store, email)
    except FlowError as exc:
        _fail(str(exc))


def _when(text: Optional[str], *, end_of_day: bool = False) -> Optional[datetime]:
    if not text:
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime.combine(d, time.max if end_of_day else time.min, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(text)
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    except ValueError:
        _fail(f"not a date: {text!r} (use YYYY-MM-DD or an ISO date-time)")


def _write(out: Optional[Path], data: str | bytes) -> None:
    if out is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            typer.echo(data)
        return
    if isinstance(data, bytes):
        out.write_bytes(data)
    else:
        out.write_text(data, encoding="utf-8")
    out.chmod(0o600)  # it holds a child's file


def _flow(fn, *args, **kwargs):
    from flows.errors import FlowError

    try:
        return fn(*args, **kwargs)
    except FlowError as exc:
        _fail(f"refused: {exc}")


def chronology(child: str = typer.Argument(..., help="MIS id / UPN, or the internal child id."),
               as_: str = typer.Option(..., "--as", help=AS_HELP)) -> None:
    """Show one child's whole file: every concern and entry in time order, siblings linked."""
    from flows.chronology import child_file, find_child

    store = _store()
    actor = _who(store, as_)
    child_id = _flow(find_child, store, actor, child)
    f = _flow(child_file, store, actor, child_id, via="cli")
    typer.echo("\n".join(f.lines()))


@export_app.command("child")
def export_child(child: str = typer.Argument(..., help="MIS id / UPN, or the internal child id."),
                 as_: str = typer.Option(..., "--as", help=AS_HELP),
                 fmt: str = typer.Option("html", "--format", help="html | pdf | json"),
                 out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: standard output).")) -> None:
    """Export a child's file: printable HTML, PDF, or the JSON transfer pack."""
    from flows import transfer
    from flows.chronology import child_file, find_child

    if fmt not in ("html", "pdf", "json"):
        _fail("--format must be html, pdf or json")
    store = _store()
    actor = _who(store, as_)
    child_id = _flow(find_child, store, actor, child)
    if fmt == "json":
        pack = _flow(transfer.export_pack, store, actor, child_id, fmt="json")
        _write(out, json.dumps(pack, indent=2, ensure_ascii=False))
        if out:
            typer.echo(f"wrote {out} (sha256 {pack['content_sha256']})")
        return
    from bot import cpfile_render

    f = _flow(child_file, store, actor, child_id, via=f"export-{fmt}")
    _flow(transfer.record_export, store, actor, child_id, fmt)
    data = cpfile_render.child_file_html(f) if fmt == "html" else cpfile_render.child_file_pdf(f)
    _write(out, data)
    if out:
        typer.echo(f"wrote {out}")


@transfer_app.command("send")
def transfer_send(child: str = typer.Argument(..., help="MIS id / UPN, or the internal child id."),
                  to: str = typer.Option(..., "--to", help="The receiving school's name."),
                  as_: str = typer.Option(..., "--as", help=AS_HELP),
                  out: Optional[Path] = typer.Option(None, "--out", help="Where to write the pack (JSON).")) -> None:
    """Export the transfer pack and record that it was sent; nudges you until receipt is confirmed."""
    from flows import transfer
    from flows.chronology import find_child

    store = _store()
    actor = _who(store, as_)
    child_id = _flow(find_child, store, actor, child)
    sent = _flow(transfer.send, store, actor, child_id, to)
    path = out or Path(f"transfer-{sent.transfer_id}.json")
    _write(path, json.dumps(sent.pack, indent=2, ensure_ascii=False))
    typer.echo(f"transfer {sent.transfer_id}: pack written to {path} (sha256 {sent.pack['content_sha256']}); "
               f"send it securely, separately from the main pupil file. "
               f"Receipt should be confirmed by {sent.due:%d/%m/%Y}: "
               f"safeguarding-bot transfer confirm {sent.transfer_id} --by \"name, role\" --as EMAIL")


@transfer_app.command("confirm")
def transfer_confirm(transfer_id: int = typer.Argument(..., help="The transfer number given by `transfer send`."),
                     by: str = typer.Option(..., "--by", help="Who at the receiving school confirmed receipt (name, role)."),
                     as_: str = typer.Option(..., "--as", help=AS_HELP),
                     at: Optional[str] = typer.Option(None, "--at", help="When they confirmed, ISO date-time, UTC unless an offset is given (default: now).")) -> None:
    """Record the receiving school's confirmation of receipt."""
    from flows import transfer

    store = _store()
    actor = _who(store, as_)
    done = _flow(transfer.confirm, store, actor, transfer_id, by, at=_when(at))
    typer.echo(f"transfer {done['transfer_id']} confirmed by {done['confirmed_by']} at {done['confirmed_at']:%d/%m/%Y %H:%M}")


@transfer_app.command("list")
def transfer_list(as_: str = typer.Option(..., "--as", help=AS_HELP),
                  pending: bool = typer.Option(False, "--pending", help="Only transfers not yet confirmed.")) -> None:
    """Transfers your school has sent, and whether the receiving school has confirmed receipt."""
    from flows import transfer

    store = _store()
    actor = _who(store, as_)
    rows = _flow(transfer.list_transfers, store, actor, pending_only=pending)
    if not rows:
        typer.echo("no transfers")
    for r in rows:
        state = (f"confirmed {r['confirmed_at']:%d/%m/%Y} by {r['confirmed_by']}" if r["state"] == "confirmed"
                 else f"NOT CONFIRMED (due {r['confirm_by']:%d/%m/%Y})" if r["confirm_by"] else r["state"])
        typer.echo(f"transfer {r['id']}: pupil {r['mis_id']} to {r['to_school']}, sent {r['sent_at']:%d/%m/%Y}: {state}")


@import_app.command("child")
def import_child(file: Path = typer.Argument(..., help="The transfer pack (JSON)."),
                 school: str = typer.Option(..., "--school", help="Slug of the receiving school."),
                 as_: str = typer.Option(..., "--as", help=AS_HELP)) -> None:
    """Import a transfer pack: schema and hash checked first; refused whole, or imported whole."""
    from flows import transfer
    from flows.errors import FlowError

    store = _store()
    actor = _who(store, as_)
    try:
        pack = transfer.load_pack_file(file)
        got = transfer.import_pack(store, actor, pack, school)
    except FlowError as exc:
        _fail(f"refused, nothing imported: {exc}")
    msg = f"imported {got.concerns} concern(s), {got.entries} chronology entries as child id {got.child_id}"
    if got.siblings_linked:
        msg += f"; linked to {len(got.siblings_linked)} sibling(s) on this roll"
    if got.siblings_not_here:
        msg += f"; {got.siblings_not_here} sibling(s) not on this roll"
    if got.confirmed_transfer:
        msg += f"; confirmed transfer {got.confirmed_transfer}"
    typer.echo(msg)


def register(app: typer.Typer) -> None:
    app.command("chronology")(chronology)
    app.add_typer(export_app, name="export")
    app.add_typer(transfer_app, name="transfer")
    app.add_typer(import_app, name="import")
    app.command("report")(report)
    app.add_typer(qa_app, name="qa")
    app.add_typer(retention_app, name="retention")
    app.command("sar")(sar)


def report(school: Optional[str] = typer.Option(None, "--school", help="One school's slug (default: every school, "
                                                                      "small numbers suppressed)."),
           trust: Optional[str] = typer.Option(None, "--trust", help="Roll up one trust's schools (small numbers "
                                                                    "suppressed)."),
           from_: Optional[str] = typer.Option(None, "--from", help="First day (YYYY-MM-DD), by date raised."),
           to: Optional[str] = typer.Option(None, "--to", help="Last day (YYYY-MM-DD), inclusive."),
           fmt: str = typer.Option("table", "--format", help="table | csv | json | html"),
           now: Optional[str] = typer.Option(None, "--now", help="Count overdue items as of this time (default: now)."),
           out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: standard output).")) -> None:
    """Concerns by category, month and school; timings; decisions; overdue and statutory misses;
    repeated concerns; worrying check-ins; the trust roll-up."""
    from datetime import timedelta

    from bot import report_render
    from flows import analytics

    if fmt not in ("table", "csv", "json", "html"):
        _fail("--format must be table, csv, json or html")
    store = _store()
    end = _when(to)
    if end is not None and to and len(to) == 10:
        end = end + timedelta(days=1)
    try:
        data = analytics.build_report(store, school=school, trust=trust, start=_when(from_), end=end,
                                      now=_when(now))
    except LookupError as exc:
        _fail(str(exc).strip("'\""))
    text = report_render.render(data, fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")



@qa_app.command("sample")
def qa_sample(as_: str = typer.Option(..., "--as", help="Your email (safeguarding team or trust safeguarding officer)."),
              school: Optional[str] = typer.Option(None, "--school", help="One school's slug (default: all you oversee)."),
              n: int = typer.Option(5, "--n", help="How many closed concerns to sample."),
              seed: Optional[int] = typer.Option(None, "--seed", help="Random seed, to repeat a sample.")) -> None:
    """Sample closed concerns, not reviewed before, for quality assurance."""
    from flows import qa

    store = _store()
    actor = _who(store, as_)
    ids = _flow(qa.sample, store, actor, school=school, n=n, seed=seed)
    if not ids:
        typer.echo("no closed concerns left to sample")
        return
    from storage.models import Concern, QaReview
    with store.session() as s:
        for rid in ids:
            r = s.get(QaReview, rid)
            typer.echo(f"review {rid}: {s.get(Concern, r.concern_id).reference}")
    typer.echo(f"score each with: safeguarding-bot qa score REVIEW_ID --as {as_}")


@qa_app.command("score")
def qa_score(review_id: int = typer.Argument(..., help="The review number from `qa sample`."),
             as_: str = typer.Option(..., "--as", help="Your email (the reviewer)."),
             set_: list[str] = typer.Option([], "--set", help="Override an item: ITEM=0 or ITEM=1 (repeatable)."),
             notes: Optional[str] = typer.Option(None, "--notes", help="The reviewer's notes (kept encrypted).")) -> None:
    """Score a sampled concern on the checklist: automatic where it can be, your overrides on top."""
    from flows import qa

    overrides = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep or value not in ("0", "1"):
            _fail(f"--set {item!r}: use ITEM=0 or ITEM=1, ITEM one of {', '.join(qa.ITEMS)}")
        overrides[key.strip()] = int(value)
    store = _store()
    actor = _who(store, as_)
    review = _flow(qa.score, store, actor, review_id, overrides=overrides, notes=notes)
    labels = dict(qa.CHECKLIST)
    for item in qa.ITEMS:
        v = review.scores[item]
        how = "auto" if v["auto"] else f"reviewer (auto said {v['auto_score']})"
        typer.echo(f"  [{'x' if v['score'] else ' '}] {labels[item]} — {v['why']} ({how})")
    typer.echo(f"review {review.id}: {review.total}/{len(qa.ITEMS)}")


@qa_app.command("report")
def qa_report_cmd(school: Optional[str] = typer.Option(None, "--school", help="One school's slug."),
                  fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """QA scores per school and over time."""
    from flows import qa

    store = _store()
    data = qa.qa_report(store, school=school)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo("QA by school (mean score out of 6; pass rate per checklist item)")
    for slug, row in data["schools"].items():
        rates = " ".join(f"{k}={'—' if v is None else f'{v:.0%}'}" for k, v in row["pass_rate"].items())
        typer.echo(f"  {slug:<16} sampled {row['sampled']:>3} scored {row['scored']:>3} "
                   f"mean {'—' if row['mean_total'] is None else row['mean_total']}  {rates}")
    typer.echo("QA over time (month scored)")
    for month, row in data["months"].items():
        typer.echo(f"  {month}  scored {row['scored']:>3}  mean {row['mean_total']}")


@retention_app.command("run")
def retention_run(dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; change nothing."),
                  now: Optional[str] = typer.Option(None, "--now", help="Apply the policy as of this date."),
                  as_: Optional[str] = typer.Option(None, "--as", help="Your email, recorded in the audit trail.")) -> None:
    """Delete the content of records past their retention date (the audit chain stays verifiable)."""
    from flows import retention

    store = _store()
    actor = _who(store, as_) if as_ else None
    try:
        result = retention.run(store, now=_when(now), dry_run=dry_run, actor_id=actor)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo("\n".join(result.lines()))


def sar(email: Optional[str] = typer.Option(None, "--email", help="A member of staff's email."),
        child: Optional[str] = typer.Option(None, "--child", help="A pupil's MIS id / UPN or internal id."),
        out: Path = typer.Option(..., "--out", help="File to write (JSON)."),
        as_: str = typer.Option(..., "--as", help="Your email (safeguarding team or trust safeguarding officer).")) -> None:
    """Subject access export: everything held about one person, for review before disclosure."""
    from flows import sar as sar_flow
    from flows.chronology import find_child

    if bool(email) == bool(child):
        _fail("give exactly one of --email or --child")
    store = _store()
    actor = _who(store, as_)
    if child:
        doc = _flow(sar_flow.child_export, store, actor, _flow(find_child, store, actor, child))
    else:
        doc = _flow(sar_flow.person_export, store, actor, email)
    _write(out, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    typer.echo(f"wrote {out}: review and redact other people's information before disclosure")
