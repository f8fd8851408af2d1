"""Where the Teams conversation is wired to the flows (issue 7 points 7-9).

`register_handlers` is called by `bot.teams.app.build_teams_app` for every Teams app the server
builds (on and playground modes), before `await app.initialize()`. Register handlers with the SDK's
decorators, e.g.::

    @app.on_message
    async def on_message(ctx): ...                      # typed commands, Action.Submit values

    @app.on_card_action_execute("acknowledge")          # matches value.action.data["action"]
    async def on_ack(ctx): ...                          # return a typed invoke response

Flows are synchronous: call them with `await asyncio.to_thread(...)`. Never log activity content.
"""

from __future__ import annotations


def register_handlers(app, settings, store) -> None:
    """No conversation handlers yet: the platform layer only."""
    return None
