"""The same message dispatched several times and taken by two real workers at once is sent once.

(The in-process races — two threads staging the same event, two threads delivering one row — are in
tests/services/test_outbox.py and run on PostgreSQL too; this is the same race between processes.)
"""

from __future__ import annotations

import time

from sqlalchemy import select

from midas.extensions import db
from midas.models import Notification
from midas.services import booking_states, outbox
from midas.tasks import queue
from tests.conftest import make_staff
from tests.fakes.stripe_api import card_booking
from tests.reliability.processes import FLASK, app_env, start, wait_for

COPIES = 6


def test_one_message_enqueued_six_times_for_two_parallel_workers_is_sent_once(
        app, postgres_url, private_redis, slow_smtp, processes, tmp_path, reliability_report):
    env = app_env(postgres_url, private_redis.url, SMTP_URL=slow_smtp.url, EMAIL_PROVIDERS="smtp")
    admin = make_staff("admin", email="admin-race@midas.test")
    booking = card_booking(status="quote")
    booking.customer.sms_opt_in = False
    db.session.commit()

    booking_states.confirm(admin, booking.reference)  # stages the email and enqueues its job once
    row = db.session.scalar(select(Notification).where(Notification.channel == "email"))
    for _ in range(COPIES - 1):  # a sweep, a resend, a retry: the same job again and again
        queue.enqueue(outbox.SEND_JOB, row.id, queue="high")
    for n in range(2):
        processes.append(start([*FLASK, "worker", "--burst"], env, tmp_path / f"worker-{n}.log"))
    wait_for(lambda: all(p.popen.poll() is not None for p in processes), 90, "both burst workers to finish")
    time.sleep(0.5)

    assert slow_smtp.tagged() == [f"{row.id}-booking_confirmation"]
    db.session.refresh(row)
    assert (row.status, row.attempts) == ("sent", 1)
    reliability_report.add("events", COPIES)
