"""The hub as one object: settings, store, write semantics and @context resolution together."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cityos.config import Settings, parse_mirrors
from cityos.hub.entities import EntityService
from cityos.hub.ldcontext import ContextResolver
from cityos.hub.model import now_iso
from cityos.hub.store import open_store
from cityos.hub.store.base import Store, StoredContext
from cityos.hub.subscriptions import SubscriptionIndex

# A context the hub hosts is fetched back by clients at .../ngsi-ld/v1/jsonldContexts/<id>,
# under whatever host name they reach us by: resolve those locally, never over the network.
_HOSTED = re.compile(r"^https?://[^/]+/ngsi-ld/v1/jsonldContexts/(?P<id>[^/?#]+)$")


class Hub:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(
            settings.database_url, pg_synchronous_commit=settings.pg_synchronous_commit
        )
        self.store.migrate()
        self.contexts = ContextResolver(
            load=self._load_context,
            save=self._save_context,
            allow_hosts=set(settings.context_allow_hosts),
            timeout=settings.context_fetch_timeout_s,
            max_bytes=settings.context_max_bytes,
            allow_private_hosts=settings.context_allow_private_hosts,  # hardening
            mirrors=parse_mirrors(settings.context_mirrors),
        )
        self.subscriptions = SubscriptionIndex(self.store, self.contexts)
        # receivers of in-process subscriptions (HubClient.subscribe), by endpoint name
        self.local_receivers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.entities = EntityService(
            self.store, self.subscriptions, max_attributes=settings.max_attributes
        )

    def _load_context(self, url: str) -> Any | None:
        m = _HOSTED.match(url)
        stored = self.store.get_context(m.group("id") if m else url)
        return stored.body if stored else None

    def _save_context(self, url: str, body: Any) -> None:
        self.store.put_context(
            StoredContext(id=url, url=url, body=body, kind="cached", created_at=now_iso())
        )

    def close(self) -> None:
        self.store.close()
