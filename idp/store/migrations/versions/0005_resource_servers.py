"""resource servers (RFC 8707 resource indicators); refresh_tokens.resources

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'resource_servers',
        sa.Column('identifier', sa.String(length=512), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('scopes', sa.Text(), nullable=False),
        sa.Column('client_id', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('identifier'),
    )
    op.create_index('ix_resource_servers_client_id', 'resource_servers', ['client_id'])
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        # Refresh tokens issued before resource indicators were granted no resource: NULL.
        batch_op.add_column(sa.Column('resources', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('resources')
    op.drop_index('ix_resource_servers_client_id', table_name='resource_servers')
    op.drop_table('resource_servers')
