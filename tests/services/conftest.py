"""What the services' tests share: reading as a role that may read only some types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from cityos.hub import access
from cityos.hub.ldcontext import core_context
from cityos.security import scope
from cityos.security.policy import Policy
from cityos.security.principal import Principal


@contextmanager
def _as_viewer(*types: str) -> Iterator[None]:
    rules = {"roles": {"viewer": [{"types": list(types), "actions": ["read"]}]}}
    who = Principal("viewer", frozenset({""}), frozenset({"viewer"}))
    previous = access.current()
    token = scope.as_caller(who, "", Policy(rules, core_context()))
    try:
        yield
    finally:
        scope.CALLER.reset(token)
        access.install(previous)


@pytest.fixture
def viewer() -> Callable[..., AbstractContextManager[None]]:
    """``with viewer("TypeA", "TypeB"):`` reads as a caller whose role may read only those
    types (as the door sets it for a request)."""
    return _as_viewer
