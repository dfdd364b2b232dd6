"""The NGSI-LD HTTP API under ``/ngsi-ld/v1``: one table of routes, shared by the app and OpenAPI."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from cityos.hub.api import (
    batch,
    contexts,
    csource_subscriptions,
    csources,
    entities,
    subscriptions,
    temporal,
    types,
)

PREFIX = "/ngsi-ld/v1"

# (path, method, handler, operation summary) — the OpenAPI document is generated from this.
ROUTES = [
    ("/entities", "POST", entities.create_entity, "Create an entity"),
    ("/entities", "GET", entities.query_entities, "Query entities"),
    ("/entities", "DELETE", entities.purge_entities, "Purge the entities a query selects"),
    ("/entities/{entity_id}", "GET", entities.retrieve_entity, "Retrieve an entity"),
    ("/entities/{entity_id}", "PUT", entities.replace_entity, "Replace an entity"),
    ("/entities/{entity_id}", "PATCH", entities.merge_entity, "Merge into an entity"),
    ("/entities/{entity_id}", "DELETE", entities.delete_entity, "Delete an entity"),
    ("/entities/{entity_id}/attrs", "POST", entities.append_attrs, "Append attributes"),
    ("/entities/{entity_id}/attrs", "PATCH", entities.update_attrs, "Update attributes"),
    (
        "/entities/{entity_id}/attrs/{attr}",
        "PATCH",
        entities.partial_attr_update,
        "Partial attribute update",
    ),
    ("/entities/{entity_id}/attrs/{attr}", "PUT", entities.replace_attr, "Replace an attribute"),
    ("/entities/{entity_id}/attrs/{attr}", "DELETE", entities.delete_attr, "Delete an attribute"),
    ("/entityOperations/create", "POST", batch.batch_create, "Batch create"),
    ("/entityOperations/upsert", "POST", batch.batch_upsert, "Batch upsert"),
    ("/entityOperations/update", "POST", batch.batch_update, "Batch update"),
    ("/entityOperations/merge", "POST", batch.batch_merge, "Batch merge"),
    ("/entityOperations/delete", "POST", batch.batch_delete, "Batch delete"),
    ("/entityOperations/query", "POST", batch.batch_query, "Query entities (POST)"),
    ("/temporal/entities", "GET", temporal.query_temporal, "Query the history of entities"),
    (
        "/temporal/entityOperations/query",
        "POST",
        temporal.query_temporal_post,
        "Query the history of entities (POST)",
    ),
    (
        "/temporal/entities",
        "POST",
        temporal.create_temporal,
        "Create or add to an entity's history",
    ),
    (
        "/temporal/entities/{entity_id}",
        "GET",
        temporal.retrieve_temporal,
        "Retrieve an entity's history",
    ),
    (
        "/temporal/entities/{entity_id}",
        "DELETE",
        temporal.delete_temporal,
        "Delete an entity and its history",
    ),
    (
        "/temporal/entities/{entity_id}/attrs",
        "POST",
        temporal.append_temporal_attrs,
        "Add instances to history",
    ),
    (
        "/temporal/entities/{entity_id}/attrs/{attr}",
        "DELETE",
        temporal.delete_temporal_attr,
        "Delete history",
    ),
    (
        "/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}",
        "PATCH",
        temporal.patch_temporal_instance,
        "Modify an instance",
    ),
    (
        "/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}",
        "DELETE",
        temporal.delete_temporal_attr,
        "Delete an instance",
    ),
    ("/subscriptions", "POST", subscriptions.create_subscription, "Create a subscription"),
    ("/subscriptions", "GET", subscriptions.list_subscriptions, "List subscriptions"),
    (
        "/subscriptions/{subscription_id}",
        "GET",
        subscriptions.retrieve_subscription,
        "Retrieve a subscription",
    ),
    (
        "/subscriptions/{subscription_id}",
        "PATCH",
        subscriptions.update_subscription,
        "Update a subscription",
    ),
    (
        "/subscriptions/{subscription_id}",
        "DELETE",
        subscriptions.delete_subscription,
        "Delete a subscription",
    ),
    ("/types", "GET", types.list_types, "List entity types"),
    ("/types/{type}", "GET", types.type_info, "Entity type information"),
    ("/attributes", "GET", types.list_attributes, "List attributes"),
    ("/attributes/{attr}", "GET", types.attribute_info, "Attribute information"),
    ("/jsonldContexts", "GET", contexts.list_contexts, "List @contexts"),
    ("/jsonldContexts", "POST", contexts.add_context, "Host an @context"),
    ("/jsonldContexts/{context_id}", "GET", contexts.serve_context, "Serve an @context"),
    ("/jsonldContexts/{context_id}", "DELETE", contexts.delete_context, "Delete an @context"),
    (
        "/csourceRegistrations",
        "POST",
        csources.create_registration,
        "Register a context source",
    ),
    (
        "/csourceRegistrations",
        "GET",
        csources.query_registrations,
        "Discover context source registrations",
    ),
    (
        "/csourceRegistrations/{registration_id}",
        "GET",
        csources.retrieve_registration,
        "Retrieve a context source registration",
    ),
    (
        "/csourceRegistrations/{registration_id}",
        "PATCH",
        csources.update_registration,
        "Update a context source registration",
    ),
    (
        "/csourceRegistrations/{registration_id}",
        "DELETE",
        csources.delete_registration,
        "Delete a context source registration",
    ),
    (
        "/csourceSubscriptions",
        "POST",
        csource_subscriptions.create_csource_subscription,
        "Subscribe to context source registrations",
    ),
    (
        "/csourceSubscriptions",
        "GET",
        csource_subscriptions.list_csource_subscriptions,
        "List csource subscriptions",
    ),
    (
        "/csourceSubscriptions/{subscription_id}",
        "GET",
        csource_subscriptions.retrieve_csource_subscription,
        "Retrieve a csource subscription",
    ),
    (
        "/csourceSubscriptions/{subscription_id}",
        "PATCH",
        csource_subscriptions.update_csource_subscription,
        "Update a csource subscription",
    ),
    (
        "/csourceSubscriptions/{subscription_id}",
        "DELETE",
        csource_subscriptions.delete_csource_subscription,
        "Delete a csource subscription",
    ),
]


def routes() -> list[Route]:
    return build_routes(ROUTES, PREFIX)


def build_routes(table: list[tuple[str, str, Any, str]], prefix: str = "") -> list[Route]:
    """Starlette routes from a (path, method, handler, summary) table, one Route per path."""
    by_path: dict[str, dict[str, object]] = {}
    for path, method, handler, _ in table:
        by_path.setdefault(path, {})[method] = handler
    return [
        Route(prefix + path, _dispatch(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


def _dispatch(handlers: dict[str, object]):
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request):  # type: ignore[no-untyped-def]
        return await handlers[request.method](request)  # type: ignore[operator]

    return dispatch
