"""second factors that moved with a merge: whose WebAuthn user handle a passkey carries, and
which person a recovery code's keyed hash was made for

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL (every row so far): the row's own person, as before.
    with op.batch_alter_table("webauthn_credentials") as batch:
        batch.add_column(sa.Column("user_handle_of", sa.String(length=32), nullable=True))
    with op.batch_alter_table("recovery_codes") as batch:
        batch.add_column(sa.Column("bound_to", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recovery_codes") as batch:
        batch.drop_column("bound_to")
    with op.batch_alter_table("webauthn_credentials") as batch:
        batch.drop_column("user_handle_of")
