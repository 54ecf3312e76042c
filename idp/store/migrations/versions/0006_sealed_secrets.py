"""versioned key-encryption keys (kek_versions) and stable secrets sealed under them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Both start empty: the first NIXA to start registers its master key as version 1 and, on a
    # database that already has signing keys, initialises each stable secret to the value the
    # master key used to derive, so no `sub` and no client secret changes (keys/stable.py).
    op.create_table(
        'kek_versions',
        sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('version'),
        sa.UniqueConstraint('fingerprint'),
    )
    op.create_table(
        'stable_secrets',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('stable_secrets')
    op.drop_table('kek_versions')
