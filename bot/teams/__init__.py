"""Microsoft Teams transport: hosting, inbound security, outbound client, references, manifest.

Entry points for the conversation layer:
- `build_teams_app(settings, store, *, playground=False)` -> the SDK `App` or None (Teams off);
  handlers are registered in `bot.teams.handlers.register_handlers`.
- `send_to_person`, `update_activity`, `create_personal_conversation` (bot.teams.client).
- `TeamsOutbound(settings, store)`: the same, synchronously, for the worker (bot.teams.outbound).
- `save_ref`, `get_ref`, `mark_stale` (bot.teams.refs).

The conversation: bot.teams.handlers (commands, card actions, install greeting), bot.teams.cards
(Adaptive Cards from the flows' forms and notices), bot.teams.identity (tenant + AAD object id, or
the member's email, -> a directory person), bot.teams.delivery (the outbox transport).

Imports are lazy: importing the Teams SDK loads a `.env` into the environment, so only the
commands that need Teams pay for it.
"""

from importlib import import_module

_WHERE = {
    "build_teams_app": "bot.teams.app", "install_teams": "bot.teams.app",
    "send_to_person": "bot.teams.client", "update_activity": "bot.teams.client",
    "create_personal_conversation": "bot.teams.client", "RecipientUnreachable": "bot.teams.client",
    "StaleReference": "bot.teams.client", "TeamsSendError": "bot.teams.client",
    "TokenUnavailable": "bot.teams.client",
    "TeamsOutbound": "bot.teams.outbound", "delivery_error": "bot.teams.outbound",
    "save_ref": "bot.teams.refs", "get_ref": "bot.teams.refs", "mark_stale": "bot.teams.refs",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(name)
