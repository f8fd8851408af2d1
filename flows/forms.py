"""Forms defined once (fields, labels, help, choices, validation) and rendered by each
transport: Slack as a modal, Teams as an Adaptive Card, the terminal as prompts.

Transports send back raw values (strings, lists of strings, "yes"/"no"); `clean` turns them
into Python values or raises FormErrors keyed by field name."""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Any, Callable, Optional

from dateutil import parser as dateparser
from pydantic import BaseModel, ConfigDict

from .errors import FormErrors


class Kind(StrEnum):
    text = "text"          # one line
    longtext = "longtext"  # several lines
    choice = "choice"      # one of choices
    multichoice = "multichoice"
    boolean = "boolean"    # yes / no
    date = "date"
    datetime = "datetime"
    child = "child"        # a pupil from the roster, or a name typed when not found
    person = "person"      # a member of staff from the directory, or a name typed when not listed


class Choice(BaseModel):
    value: str
    label: str


class Field(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    label: str
    kind: Kind
    help: str = ""
    placeholder: str = ""
    required: bool = False
    choices: tuple[Choice, ...] = ()
    max_length: int = 3000
    min_length: int = 0
    # Show (and require) only when another field has one of these values.
    show_if: Optional[tuple[str, tuple[str, ...]]] = None
    not_in_future: bool = False

    def visible(self, values: dict[str, Any]) -> bool:
        if self.show_if is None:
            return True
        other, wanted = self.show_if
        got = values.get(other)
        if isinstance(got, bool):
            got = "yes" if got else "no"
        if isinstance(got, (list, tuple)):
            return any(g in wanted for g in got)
        return got in wanted


class Form(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    submit_label: str = "Submit"
    intro: str = ""
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


YES = {"yes", "y", "true", "1", "on"}
NO = {"no", "n", "false", "0", "off"}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, (list, tuple)) and not v)


def _parse_datetime(v: Any, tz: timezone | Any) -> datetime:
    if isinstance(v, datetime):
        dt = v
    elif isinstance(v, (int, float)) or (isinstance(v, str) and v.strip().isdigit()):
        dt = datetime.fromtimestamp(int(v), timezone.utc)  # Slack's datetimepicker sends unix time
    else:
        text = str(v).strip()
        try:  # ISO 8601 first: dateutil's dayfirst would read 2026-11-04 as 11 April
            dt = datetime.fromisoformat(text)
        except ValueError:
            dt = dateparser.parse(text, dayfirst=True)  # UK forms: 04/11/2026 is 4 November
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


def _parse_date(v: Any) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    s = str(v).strip()
    try:
        return date.fromisoformat(s)
    except ValueError:
        return dateparser.parse(s, dayfirst=True).date()


def clean(form: Form, raw: dict[str, Any], *, tz=timezone.utc, now: datetime | None = None,
          extra_checks: Callable[[dict[str, Any], dict[str, str]], None] | None = None) -> dict[str, Any]:
    """Validate and convert; every problem is reported at once, per field."""
    now = now or datetime.now(timezone.utc)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    # Booleans and choices first: show_if conditions depend on them.
    ordered = sorted(form.fields, key=lambda f: f.kind not in (Kind.boolean, Kind.choice))
    for f in ordered:
        v = raw.get(f.name)
        if not f.visible({**raw, **values}):
            continue
        if _blank(v):
            if f.required:
                errors[f.name] = _missing_message(f)
            else:
                values[f.name] = [] if f.kind == Kind.multichoice else None
            continue
        try:
            values[f.name] = _convert(f, v, tz, now)
        except ValueError as exc:
            errors[f.name] = str(exc)
    if extra_checks:
        extra_checks(values, errors)
    if errors:
        raise FormErrors(errors)
    return values


def _missing_message(f: Field) -> str:
    if f.kind in (Kind.choice, Kind.multichoice, Kind.boolean):
        return f"Choose an answer for “{f.label}”."
    return f"Fill in “{f.label}”."


def _convert(f: Field, v: Any, tz, now: datetime) -> Any:
    valid = {c.value for c in f.choices}
    if f.kind in (Kind.text, Kind.longtext, Kind.child, Kind.person):
        s = str(v).strip()
        if f.kind == Kind.text:
            s = " ".join(s.split())
        if len(s) > f.max_length:
            raise ValueError(f"Shorten this to {f.max_length} characters or fewer (it has {len(s)}).")
        if len(s) < f.min_length:
            raise ValueError(f"Add more detail: at least {f.min_length} characters (it has {len(s)}).")
        return s
    if f.kind == Kind.boolean:
        s = str(v).strip().lower()
        if s in YES:
            return True
        if s in NO:
            return False
        raise ValueError("Answer yes or no.")
    if f.kind == Kind.choice:
        s = str(v).strip()
        if s not in valid:
            raise ValueError(f"Choose one of the listed options for “{f.label}”.")
        return s
    if f.kind == Kind.multichoice:
        items = v if isinstance(v, (list, tuple)) else [p.strip() for p in str(v).split(",")]
        items = [str(i).strip() for i in items if str(i).strip()]
        bad = [i for i in items if i not in valid]
        if bad:
            raise ValueError(f"Choose from the listed options only (not recognised: {', '.join(bad)}).")
        return list(dict.fromkeys(items))
    if f.kind == Kind.datetime:
        try:
            dt = _parse_datetime(v, tz)
        except (ValueError, OverflowError, TypeError):
            raise ValueError("Give a date and time, for example 25/11/2026 14:30.") from None
        if f.not_in_future and dt > now:
            raise ValueError("This is in the future: give a date and time that has already happened.")
        return dt
    if f.kind == Kind.date:
        try:
            return _parse_date(v)
        except (ValueError, OverflowError, TypeError):
            raise ValueError("Give a date, for example 25/11/2026.") from None
    raise ValueError(f"unsupported field kind {f.kind}")
