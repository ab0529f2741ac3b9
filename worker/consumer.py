"""The worker's broker consumer: Celery's, kept alive when the broker goes away mid-task.

On a lost connection Celery collects the broken connection, then closes it. Closing kombu's
Redis channel restores the messages this worker holds unacknowledged (acks_late: the chunk in
flight), and that needs the connection `collect` just dropped: AttributeError, which Celery
takes for an "Unrecoverable error" and stops the whole worker, sometimes, when Redis dies mid-job
(`python -m benchmarks chaos`, kill-redis). Nothing is lost by skipping that restore: the
message stays in kombu's `unacked` hash, where the reaper (store.recovery) and the broker's
visibility timeout find it. So the consumer logs it and reconnects, as after any other loss.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


class BrokerConsumer(Consumer):
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as closing:  # kombu: restoring on a connection already dropped
            log.warning("unacknowledged messages not restored on the lost connection (%r);"
                        " they stay unacknowledged for the reaper", closing)
