"""administration: admin roles of persons, client secret rotation with an overlap, dynamic
client registration (initial access tokens, registration access tokens)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'admin_roles',
        sa.Column('person_id', sa.String(length=32), nullable=False),
        sa.Column('role', sa.String(length=32), nullable=False),
        sa.Column('granted_at', sa.Float(), nullable=False),
        sa.Column('granted_by', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['persons.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('person_id', 'role'),
    )
    op.create_table(
        'initial_access_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('uses_left', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_hash', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('registration_token_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('registration_token_hash')
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_hash')
    op.drop_table('initial_access_tokens')
    op.drop_table('admin_roles')
