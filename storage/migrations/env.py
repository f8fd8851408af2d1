"""Alembic environment: the engine comes from the Store (storage.db.upgrade_schema) or,
for `alembic` run by hand, from DATABASE_URL."""

import os

from alembic import context
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)
from storage.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(os.environ.get("DATABASE_URL", "sqlite:///safeguarding.sqlite3"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
