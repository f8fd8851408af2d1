"""subject: how the adult a concern is about is known (picked, unresolved, identified, not listed)

Revision ID: 0006_subject
Revises: 0003

A concern about an adult whose subject was typed rather than picked from the staff list is
``unresolved``: only its routed recipient (never the DSL team) may see it until they decide
who the adult is (flows/access.py). Existing rows: an adult with a directory person is
``picked`` (the old exact-name match, kept so that person stays excluded); an adult without
one is ``unresolved`` (it may be anyone in the DSL team, spelled differently).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_subject'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('concern') as batch:
        batch.add_column(sa.Column('subject_status', sa.String(length=20), nullable=True))
    concern = sa.table('concern', sa.column('about_adult', sa.Boolean), sa.column('subject_person_id', sa.Integer),
                       sa.column('subject_status', sa.String))
    op.execute(concern.update().where(concern.c.about_adult.is_(True), concern.c.subject_person_id.is_not(None))
               .values(subject_status='picked'))
    op.execute(concern.update().where(concern.c.about_adult.is_(True), concern.c.subject_person_id.is_(None))
               .values(subject_status='unresolved'))


def downgrade() -> None:
    with op.batch_alter_table('concern') as batch:
        batch.drop_column('subject_status')
