"""where each signing key's private half lives: sealed in the database, or in a PKCS#11 HSM

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('signing_keys') as batch:
        batch.add_column(sa.Column('backend', sa.String(length=16), nullable=False, server_default='database'))


def downgrade() -> None:
    with op.batch_alter_table('signing_keys') as batch:
        batch.drop_column('backend')
