"""Delivery claims, shared by both engines: how several workers split the outbox.

A worker claims a subscription (a row in ``delivery_claims`` with its name and a deadline)
before it sends that subscription's notifications, so each subscription has one sender at a
time: its notifications go out once and in order, while different subscriptions go out from
different workers. A claim from a worker that died lapses at its deadline and another takes
over. The statements use ``?`` placeholders; the PostgreSQL store swaps in ``%s``.
"""

from __future__ import annotations

from typing import Any

from cityos.hub.model import now_iso

# Claim every subscription with a due head notification (or a due periodic one) that no
# other live worker holds. Two workers racing for one row: the loser waits on the row lock,
# then sees the winner's unexpired claim in the DO UPDATE condition and gets nothing.
CLAIM_SQL = """
WITH due AS (
    SELECT tenant, subscription_id FROM outbox WHERE state = 'pending' AND next_at <= ?
    UNION
    SELECT tenant, id FROM subscriptions WHERE periodic_at IS NOT NULL AND periodic_at <= ?
), free AS (
    SELECT d.tenant, d.subscription_id FROM due d
    WHERE NOT EXISTS (
        SELECT 1 FROM delivery_claims c
        WHERE c.tenant = d.tenant AND c.subscription_id = d.subscription_id
          AND c.until > ? AND c.owner <> ?
    )
    LIMIT ?
)
INSERT INTO delivery_claims(tenant, subscription_id, owner, until)
SELECT tenant, subscription_id, ?, ? FROM free WHERE true
ON CONFLICT (tenant, subscription_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE delivery_claims.until <= ? OR delivery_claims.owner = excluded.owner
"""

# What the claimed subscriptions have due, oldest first; a notification waiting for a retry
# holds back the newer ones of its subscription (order per subscription). The first such
# row is found once per subscription, so the cost follows the backlog, not its square.
DUE_SQL = """
WITH mine AS (
    SELECT tenant, subscription_id FROM delivery_claims WHERE owner = ?
), blocked AS (
    SELECT o.tenant, o.subscription_id, min(o.nid) AS nid
    FROM outbox o JOIN mine m
      ON m.tenant = o.tenant AND m.subscription_id = o.subscription_id
    WHERE o.state = 'pending' AND o.next_at > ?
    GROUP BY o.tenant, o.subscription_id
)
SELECT o.nid, o.tenant, o.subscription_id, o.payload, o.attempts
FROM outbox o
JOIN mine m ON m.tenant = o.tenant AND m.subscription_id = o.subscription_id
LEFT JOIN blocked b ON b.tenant = o.tenant AND b.subscription_id = o.subscription_id
WHERE o.state = 'pending' AND o.next_at <= ? AND (b.nid IS NULL OR o.nid < b.nid)
ORDER BY o.nid LIMIT ?
"""

PERIODIC_SQL = """
SELECT s.tenant, s.id FROM subscriptions s JOIN delivery_claims c
  ON c.tenant = s.tenant AND c.subscription_id = s.id
WHERE c.owner = ? AND s.periodic_at IS NOT NULL AND s.periodic_at <= ?
"""

MAX_SUBSCRIPTIONS_PER_CLAIM = 64


def claim_params(owner: str, now: str, until: str) -> tuple[Any, ...]:
    return (now, now, now, owner, MAX_SUBSCRIPTIONS_PER_CLAIM, owner, until, now)


def periodic_start(sub: dict[str, Any]) -> str | None:
    """When a subscription's first periodic notification is due (None: not periodic, or
    paused). An existing schedule is kept by the stores when a subscription is updated."""
    if sub.get("timeInterval") and sub.get("isActive", True):
        return now_iso()
    return None
