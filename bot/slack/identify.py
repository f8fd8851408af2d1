"""Slack: "Identify the adult" (flows/subject.py). The routed recipient of a concern whose adult
was typed, not picked, presses it on the alert or the record; a modal asks whether the adult is
on the staff list (the same external select as the report's, answered from the staff list
only), who, and why; the submission records the decision through the flow."""

from __future__ import annotations

import asyncio

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from flows import notices, subject

from . import ids, render

to_thread = asyncio.to_thread


def identify_modal(md: dict, values: dict | None = None, labels: dict | None = None) -> dict:
    """The form, with the reference and the name as typed (kept in private_metadata, so that a
    re-render after a field change shows them again without a database read)."""
    top = [SectionBlock(text=MarkdownTextObject(text=render.cut(
        f"*{render.esc(md.get('ref', ''))}*: the referrer wrote “{render.esc(md.get('typed', ''))}”.", 3000)))]
    form = subject.identify_form()
    blocks = render.form_blocks(form, values, labels=labels, top=top)
    return render.modal(ids.VIEW_IDENTIFY, form.title, blocks, submit=form.submit_label,
                        private_metadata=render.meta(**md))


def register(app, h, store) -> None:
    """Wire the action, the modal's field changes and its submission into the Bolt app."""

    @app.action(notices.IDENTIFY_SUBJECT)
    async def on_identify(ack, body, client):
        await ack()
        view_id = await h.open_view(client, body, render.loading_modal(ids.VIEW_IDENTIFY, "Identify the adult"))
        pid = await h.person(client, body)
        if pid is None:
            return await h.unknown(client, body, view_id)
        from bot.slack.app import _value
        from flows.errors import FlowError

        try:
            p = await to_thread(subject.pending, store, pid, _value(body).get("concern_id"))
        except FlowError as exc:
            return await client.views_update(view_id=view_id, view=render.info_modal("Not possible", [str(exc)]))
        md = {"concern_id": p["concern_id"], "ref": p["reference"], "typed": render.cut(p["typed"], 500)}
        await client.views_update(view_id=view_id, view=identify_modal(md))

    @app.view(ids.VIEW_IDENTIFY)
    async def on_identify_submit(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: subject.identify_from_form(store, pid, md["concern_id"], raw),
                             "Adult identified", _line)


def _line(out) -> str:
    # A resubmission of the same view (a double click) is answered without the first result.
    return subject.outcome_line(out) if isinstance(out, dict) else "Already recorded: this form was sent once."
