"""lookup indexes: the customer page's duplicate checks, the payments dashboard's counters, feed freshness

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:00:00

Measured on the 200,000-booking benchmark database, where each of these was a sequential scan per
request: same-phone and same-mailbox duplicates, failures of the last 24 hours, the currency filter's
distinct currencies, the 30-day success and refund counters (covering, so read from the index), and
each provider's latest webhook (home and the event log ask on every load).
Self-contained: no application code is imported.
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customers_phone', 'customers', ['phone'])
    # varchar_pattern_ops lets LIKE 'prefix%' use the index whatever the database's collation.
    op.create_index('ix_customers_email_pattern', 'customers', ['email'],
                    postgresql_ops={'email': 'varchar_pattern_ops'})
    op.create_index('ix_payments_status_updated', 'payments', ['status', 'updated_at'])
    op.create_index('ix_payments_currency', 'payments', ['currency'])
    op.create_index('ix_payments_window', 'payments', ['created_at'],
                    postgresql_include=['status', 'kind', 'currency', 'amount', 'amount_refunded'])
    op.create_index('ix_webhook_events_provider_received', 'webhook_events', ['provider', 'received_at'])


def downgrade():
    op.drop_index('ix_webhook_events_provider_received', table_name='webhook_events')
    op.drop_index('ix_payments_window', table_name='payments')
    op.drop_index('ix_payments_currency', table_name='payments')
    op.drop_index('ix_payments_status_updated', table_name='payments')
    op.drop_index('ix_customers_email_pattern', table_name='customers')
    op.drop_index('ix_customers_phone', table_name='customers')
