"""child protection file: imported-concern origin, retention redaction, report indexes

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import storage.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('concern') as batch:
        batch.add_column(sa.Column('origin', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('redacted_at', storage.types.UTCDateTime(), nullable=True))
    op.create_index('ix_concern_school_created', 'concern', ['school_id', 'created_at'], unique=False)
    op.create_index('ix_chronology_kind_concern', 'chronologyentry', ['kind', 'concern_id'], unique=False)
    op.create_index('ix_auditevent_child_action', 'auditevent', ['child_id', 'action'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_auditevent_child_action', table_name='auditevent')
    op.drop_index('ix_chronology_kind_concern', table_name='chronologyentry')
    op.drop_index('ix_concern_school_created', table_name='concern')
    with op.batch_alter_table('concern') as batch:
        batch.drop_column('redacted_at')
        batch.drop_column('origin')
