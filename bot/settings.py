"""Configuration from the environment and an optional `.env` file (pydantic-settings)."""

from __future__ import annotations

from typing import Optional

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(Exception):
    """A setting is wrong; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False)

    database_url: str = Field("sqlite:///safeguarding.sqlite3", validation_alias="DATABASE_URL")
    safeguarding_data_key: Optional[SecretStr] = Field(None, validation_alias="SAFEGUARDING_DATA_KEY")
    slack_bot_token: Optional[SecretStr] = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: Optional[SecretStr] = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: Optional[SecretStr] = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    teams_app_id: Optional[str] = Field(None, validation_alias="TEAMS_APP_ID")
    teams_app_password: Optional[SecretStr] = Field(None, validation_alias="TEAMS_APP_PASSWORD")
    teams_tenant_id: Optional[str] = Field(None, validation_alias="TEAMS_TENANT_ID")
    log_level: str = Field("INFO", validation_alias=AliasChoices("SAFEGUARDING_LOG_LEVEL", "LOG_LEVEL"))

    @field_validator("database_url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            backend = make_url(v).get_backend_name()
        except ArgumentError:
            raise ValueError("not a database URL; expected e.g. sqlite:///safeguarding.sqlite3 or postgresql://user@host/db")
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported database '{backend}'; use sqlite or postgresql")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v

    @field_validator("slack_api_url")
    @classmethod
    def _api(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://slack.com/api/")
        return v if v.endswith("/") else v + "/"

    def data_key(self) -> str | None:
        return self.safeguarding_data_key.get_secret_value() if self.safeguarding_data_key else None


_ENV_NAMES = {name: (f.validation_alias if isinstance(f.validation_alias, str) else name.upper())
              for name, f in Settings.model_fields.items()}


def load_settings(**overrides) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        name = _ENV_NAMES.get(field, field.upper())
        msg = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"configuration error: {name}: {msg}") from None
