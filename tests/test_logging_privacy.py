"""No concern content in logs, even from a platform SDK's own error handling."""

import logging

from pydantic import BaseModel, ValidationError

from bot.context import WithholdSdkErrorText


class _Activity(BaseModel):
    id: int


def test_teams_sdk_exception_text_is_withheld():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(WithholdSdkErrorText())
    sdk = logging.getLogger("microsoft_teams.apps.http.http_server")
    ours = logging.getLogger("bot.worker")
    for lg in (sdk, ours):
        lg.addHandler(handler)
    try:
        try:
            _Activity.model_validate({"id": "Amira said dad hit her"})
        except ValidationError as exc:
            sdk.exception(str(exc))  # what the SDK does when it cannot handle an activity
        ours.error("outbox 7 kind=receipt sent via slack")
    finally:
        for lg in (sdk, ours):
            lg.removeHandler(handler)
    assert len(records) == 2
    assert "Amira" not in records[0] and "ValidationError (message withheld" in records[0]
    assert records[1] == "outbox 7 kind=receipt sent via slack"  # our own lines are untouched


def test_configure_logging_installs_the_filter_on_every_handler(caplog):
    from bot.context import configure_logging

    configure_logging("INFO")
    try:
        _Activity.model_validate({"id": "Zak told me about the belt"})
    except ValidationError as exc:
        logging.getLogger("microsoft_teams.apps.http.http_server").exception(str(exc))
    assert "ValidationError (message withheld" in caplog.text and "belt" not in caplog.text
