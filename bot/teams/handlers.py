"""Where the Teams conversation is wired to the flows (issue 7 points 7-9).

`register_handlers` is called by `bot.teams.app.build_teams_app` for every Teams app the server
builds (on and playground modes), before `await app.initialize()`. Requests reach these handlers
only after our token checks (bot/teams/auth.py) and the SDK's. Register handlers with the SDK's
decorators, e.g.::

    @app.on_message
    async def on_message(ctx):                          # typed commands; Action.Submit arrives here
        ...                                             # with ctx.activity.value and no text
        await asyncio.to_thread(save_ref, store, person_id, ctx.activity)  # keep the reference fresh
        await ctx.send("...")                           # reply (goes through our retry middleware)

    @app.on_card_action_execute("acknowledge")          # matches value.action.data["action"], not verb
    async def on_ack(ctx):
        return AdaptiveCardActionCardResponse(value=card)  # always a typed response (the HTTP body)

    @app.on_install_add / @app.on_conversation_update   # the greeting

Cards: give every Action.Execute both `verb` and `data={"action": ...}` (the SDK's SubmitData
helper emits no verb), a `summary` and a text fallback with no concern content; test each with
`tests.teams_support.assert_valid_card`. Proactive sends and in-place updates: `send_to_person` /
`update_activity` (async) or `bot.teams.outbound.TeamsOutbound` (sync, for the worker).
Flows are synchronous: call them with `await asyncio.to_thread(...)`. Never log activity content.
"""

from __future__ import annotations


def register_handlers(app, settings, store) -> None:
    """No conversation handlers yet: the platform layer only."""
    return None
