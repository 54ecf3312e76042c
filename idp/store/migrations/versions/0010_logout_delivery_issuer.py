"""the issuer a back-channel logout was queued under: only a worker of that issuer signs it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("logout_deliveries") as batch:
        batch.add_column(sa.Column("issuer", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logout_deliveries") as batch:
        batch.drop_column("issuer")
