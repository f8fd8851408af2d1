"""Every id Slack routes to us: the manifest (manifests/slack/manifest.yaml) must declare the
commands, shortcuts and events listed here, and nothing else (tests/test_slack_manifest.py)."""

from __future__ import annotations

from flows import notices

# Declared in the manifest.
COMMAND = "/concern"
GLOBAL_SHORTCUT = "report_concern_shortcut"       # "Report a concern" (global: the ⚡ menu)
MESSAGE_SHORTCUT = "report_concern_from_message"  # "Start a concern report" (a message's ⋮ menu)
EVENTS = ("app_home_opened", "message.im")

COMMANDS = (COMMAND,)
GLOBAL_SHORTCUTS = (GLOBAL_SHORTCUT,)
MESSAGE_SHORTCUTS = (MESSAGE_SHORTCUT,)

# View callback ids (modals); not in the manifest, but stable.
VIEW_REPORT = "report_concern_modal"
VIEW_RECEIPT = "report_receipt_modal"
VIEW_INFO = "info_modal"
VIEW_RECORD = "concern_record_modal"
VIEW_DECISION = "record_decision_modal"
VIEW_ASK = "ask_referrer_modal"
VIEW_ANSWER = "answer_question_modal"
VIEW_SHARE = "share_outcome_modal"
VIEW_CLOSE = "close_concern_modal"
VIEW_NOTE = "add_note_modal"
VIEW_MATCH = "match_child_modal"
VIEW_IDENTIFY = "identify_subject_modal"  # "Identify the adult" (bot/slack/identify.py)

# Block action ids: the stable notice action ids, plus our own.
NOTICE_ACTIONS = (notices.ACKNOWLEDGE, notices.OPEN_RECORD, notices.RECORD_DECISION, notices.ASK_REFERRER,
                  notices.ANSWER_QUESTION, notices.CHECKIN, notices.STILL_WORRIED, notices.REQUEST_UPDATE,
                  notices.REPORT_CONCERN, notices.SHARE_OUTCOME, notices.CLOSE, notices.IDENTIFY_SUBJECT)
ADD_NOTE = "add_note"
MATCH_CHILD = "match_child"
OPEN_CHILD_FILE = "open_child_file"  # from the record: the child's whole file across concerns
VIEW_CHILD_FILE = "child_file_modal"
FIELD_PREFIX = "f."  # action ids of form inputs: f.<field name>
CHILD_ACTION = FIELD_PREFIX + "child"  # the external_select answered from the roster
STAFF_ACTION = FIELD_PREFIX + "subject"  # the report's "Which adult?" (and "Identify the adult"), from the staff list
