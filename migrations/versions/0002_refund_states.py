"""refund states: partially_refunded / refunded payments, zero refund decisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:55:00

A payment's state now follows its succeeded refunds, and a cancellation that refunds nothing is kept
as a refund decision of 0 with its rule. Self-contained: no application code is imported.
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OLD_PAYMENT_STATUSES = ("pending", "processing", "requires_action", "authorized", "succeeded", "failed", "canceled",
                        "released")
NEW_PAYMENT_STATUSES = (*OLD_PAYMENT_STATUSES, "partially_refunded", "refunded")
OLD_REFUND_STATUSES = ("pending_approval", "approved", "rejected", "processing", "succeeded", "failed", "canceled")
NEW_REFUND_STATUSES = (*OLD_REFUND_STATUSES, "no_refund")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_payments_status_valid'), type_='check')
        batch_op.alter_column('status', existing_type=sa.String(length=15), type_=sa.String(length=18),
                              existing_nullable=False)
        batch_op.create_check_constraint(op.f('ck_payments_status_valid'), _in('status', NEW_PAYMENT_STATUSES))
    # Payments refunded before this revision take the state their amount_refunded says.
    op.execute("UPDATE payments SET status = CASE WHEN amount_refunded = amount_captured THEN 'refunded' "
               "ELSE 'partially_refunded' END WHERE status = 'succeeded' AND amount_refunded > 0 "
               "AND amount_refunded <= amount_captured")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f('ck_payments_refund_state_has_refunds'),
            "status NOT IN ('partially_refunded', 'refunded') OR "
            "(amount_refunded > 0 AND amount_refunded <= amount_captured)")
        batch_op.create_check_constraint(op.f('ck_payments_refunded_in_full'),
                                         "status <> 'refunded' OR amount_refunded = amount_captured")
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_refunds_status_valid'), type_='check')
        batch_op.drop_constraint(op.f('ck_refunds_amount_positive'), type_='check')
        batch_op.create_check_constraint(op.f('ck_refunds_status_valid'), _in('status', NEW_REFUND_STATUSES))
        batch_op.create_check_constraint(
            op.f('ck_refunds_amount_fits_status'),
            "(status = 'no_refund' AND amount = 0) OR (status <> 'no_refund' AND amount > 0)")


def downgrade():
    op.execute("DELETE FROM refunds WHERE status = 'no_refund'")
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_refunds_amount_fits_status'), type_='check')
        batch_op.drop_constraint(op.f('ck_refunds_status_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_refunds_status_valid'), _in('status', OLD_REFUND_STATUSES))
        batch_op.create_check_constraint(op.f('ck_refunds_amount_positive'), 'amount > 0')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_payments_refunded_in_full'), type_='check')
        batch_op.drop_constraint(op.f('ck_payments_refund_state_has_refunds'), type_='check')
        batch_op.drop_constraint(op.f('ck_payments_status_valid'), type_='check')
    op.execute("UPDATE payments SET status = 'succeeded' WHERE status IN ('partially_refunded', 'refunded')")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=18), type_=sa.String(length=15),
                              existing_nullable=False)
        batch_op.create_check_constraint(op.f('ck_payments_status_valid'), _in('status', OLD_PAYMENT_STATUSES))
