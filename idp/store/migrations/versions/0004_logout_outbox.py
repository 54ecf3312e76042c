"""back-channel logout outbox; linked_identities.locked_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'logout_deliveries',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('client_id', sa.String(length=128), nullable=False),
        sa.Column('person_id', sa.String(length=32), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=True),
        sa.Column('uri', sa.String(length=2000), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.Float(), nullable=False),
        sa.Column('claimed_until', sa.Float(), nullable=True),
        sa.Column('last_error', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('delivered_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_logout_deliveries_client_id', 'logout_deliveries', ['client_id'])
    op.create_index('ix_logout_deliveries_person_id', 'logout_deliveries', ['person_id'])
    op.create_index('ix_logout_deliveries_due', 'logout_deliveries', ['status', 'next_attempt_at'])
    with op.batch_alter_table('linked_identities', schema=None) as batch_op:
        # Existing links were never disowned: NULL.
        batch_op.add_column(sa.Column('locked_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('linked_identities', schema=None) as batch_op:
        batch_op.drop_column('locked_at')
    op.drop_index('ix_logout_deliveries_due', table_name='logout_deliveries')
    op.drop_index('ix_logout_deliveries_person_id', table_name='logout_deliveries')
    op.drop_index('ix_logout_deliveries_client_id', table_name='logout_deliveries')
    op.drop_table('logout_deliveries')
