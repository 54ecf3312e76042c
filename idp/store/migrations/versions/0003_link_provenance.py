"""link provenance: how each linked identity was proven, at which level, from where

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('linked_identities', schema=None) as batch_op:
        # Links made before provenance was recorded keep NULLs: "not recorded", never invented.
        batch_op.add_column(sa.Column('proof_method', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('proof_loa', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('linked_from', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('linked_identities', schema=None) as batch_op:
        batch_op.drop_column('linked_from')
        batch_op.drop_column('proof_loa')
        batch_op.drop_column('proof_method')
