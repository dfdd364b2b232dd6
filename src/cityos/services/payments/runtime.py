"""What the payments routes, task and CLI share: the settings (``PaymentsSettings``, declared
by the plug in service.py), and, built once from them, the ledger's database, the tariff,
the ticket keys and the pseudonym key.

Built on first use (not at import, not at start-up), so CityOS starts and answers
``/health`` even when the ledger's database or a key file is not there yet; what fails is
said in one line (``cityos doctor`` checks each part).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .fares import Tariff, load_tariff
from .ledger import Ledger
from .ledger_sql import Database
from .taps import FareCollector
from .tickets import TicketSigner, TicketVerifier, load_or_create_key

_LOCK = threading.Lock()


@dataclass(frozen=True)
class PaymentsSettings:
    """``[services.payments]`` in cityos.toml, or ``CITYOS_PAYMENTS_<FIELD>``."""

    database_url: str = field(
        default="",
        metadata={"help": "Database of the ledger's tables; empty: the hub's own "
                  "(CITYOS_DATABASE_URL)"},
    )  # fmt: skip
    database_schema: str = field(
        default="",
        metadata={"help": "PostgreSQL schema of the ledger's tables; empty: the search path's"},
    )
    tariff: str = field(
        default="",
        metadata={"help": "Tariff file (JSON: products, stops, caps, concessions); empty: "
                  "the sample district's"},
    )  # fmt: skip
    ticket_key_path: str = field(
        default="data/payments-ticket.pem",
        metadata={"help": "Ed25519 key that signs ticket QR codes (made when missing)"},
    )
    ticket_ttl_s: int = field(
        default=60, metadata={"help": "Seconds a ticket QR code stays valid (1 to 600)"}
    )
    pseudonym_key_path: str = field(
        default="data/payments-pseudonym.key",
        metadata={"help": "Secret that turns riders' own ids into pseudonyms (made when "
                  "missing; keep it: a new one gives every rider a new account id)"},
    )  # fmt: skip
    tenant: str = field(
        default="", metadata={"help": "Tenant whose fares the task publishes into the hub"}
    )
    publish_interval_s: int = field(
        default=300,
        metadata={"help": "Seconds between two publications of each stop's fares of the day "
                  "(FareCollectionObserved); 0: the task stays idle"},
    )  # fmt: skip


@dataclass
class Payments:
    db: Database
    tariff: Tariff
    signer: TicketSigner
    pseudonym_key: bytes

    @property
    def verifier(self) -> TicketVerifier:
        return self.signer.verifier()

    def ledger(self, tenant: str = "") -> Ledger:
        return Ledger(self.db, tenant)

    def collector(self, tenant: str = "") -> FareCollector:
        """The tenant's fare collector (operators' accounts open with their first fare)."""
        return FareCollector(
            self.ledger(tenant), self.tariff, verifier=self.verifier,
            pseudonym_key=self.pseudonym_key,
        )  # fmt: skip

    def close(self) -> None:
        self.db.close()


def settings_from(core: Any) -> PaymentsSettings:
    """The service's settings from CityOS's own (``[services.payments]``,
    ``CITYOS_PAYMENTS_*``), as ``cityos serve`` reads them; ValueError names a bad one."""
    from cityos.plug import Service
    from cityos.services.settings import settings_of

    return settings_of(Service(name="payments", settings=PaymentsSettings), core)


def database_url(settings: Any, core: Any) -> str:
    """The ledger's database: its own setting, else the hub's."""
    return settings.database_url or core.database_url


def build(settings: Any, core: Any) -> Payments:
    """Everything from the settings (``PaymentsSettings``) and CityOS's own."""
    from .riders import load_or_create_secret

    db = Database(database_url(settings, core), schema=settings.database_schema or None)
    try:
        tariff = load_tariff(settings.tariff or None)
        signer = TicketSigner(
            load_or_create_key(settings.ticket_key_path), ttl_s=settings.ticket_ttl_s
        )
        key = load_or_create_secret(settings.pseudonym_key_path)
    except BaseException:
        db.close()
        raise
    return Payments(db, tariff, signer, key)


def payments_of(ctx: Any) -> Payments:
    """The service context's shared parts (built on first use, then kept in its state)."""
    found = ctx.state.get("payments")
    if found is None:
        with _LOCK:
            found = ctx.state.get("payments")
            if found is None:
                found = ctx.state["payments"] = build(ctx.settings, ctx.core)
    return found
