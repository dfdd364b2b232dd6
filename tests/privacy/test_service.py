"""The privacy part's plug: settings as every part reads them, the retention task, health
and `cityos doctor`'s checks."""

from __future__ import annotations

import asyncio

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.plug import ServiceContext
from cityos.privacy import declare, load_settings
from cityos.privacy.service import SERVICE, diagnostics, health, run_retention_job
from cityos.services.settings import settings_of

from .conftest import KEY, TRIPS, trip


def test_settings_read_the_same_as_the_plug_reads_them() -> None:
    core = Settings(
        sections={"privacy": {"rotation": "weekly"}},
        environ={"CITYOS_PRIVACY_KEY": KEY, "CITYOS_PRIVACY_SUPPRESS_BELOW": "5"},
    )
    ours = load_settings(core)
    assert ours == settings_of(SERVICE, core)
    assert (ours.key, ours.rotation, ours.suppress_below) == (KEY, "weekly", 5)
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(Settings(sections={"privacy": {"salt": "x"}}))


def test_doctor_says_how_to_set_the_key() -> None:
    bare = ServiceContext("privacy", None, load_settings(Settings()), Settings())
    [key, rotation] = diagnostics(bare)
    # no key is a choice (personal data refused), not a fault; the hint says how to set one
    assert key.ok and "refused" in key.detail
    assert "CITYOS_PRIVACY_KEY" in key.hint and "token_hex" in key.hint
    assert rotation.ok
    short = ServiceContext("privacy", None, load_settings(Settings(environ={
        "CITYOS_PRIVACY_KEY": "short"})), Settings())  # fmt: skip
    assert not diagnostics(short)[0].ok  # a key that is set but weak is a fault
    keyed = ServiceContext("privacy", None, load_settings(Settings(environ={
        "CITYOS_PRIVACY_KEY": KEY})), Settings())  # fmt: skip
    assert diagnostics(keyed)[0].ok
    assert health(bare)["pseudonymKey"] == "missing"


def test_the_retention_task_runs_and_reports(client: HubClient) -> None:
    declare(client, TRIPS)
    client.create(trip("a" * 32, "2020-01-01T00:00:00.000000Z", 1))
    core = Settings(environ={"CITYOS_PRIVACY_RETENTION_INTERVAL_S": "3600"})
    ctx = ServiceContext("privacy", client, load_settings(core), core)

    async def once() -> None:
        task = asyncio.create_task(run_retention_job(ctx))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if "last_run" in ctx.state:
                break
        task.cancel()

    asyncio.run(once())
    assert ctx.state["retention"] == "ok" and ctx.state["last_deleted"] == 1
    assert health(ctx)["status"] == "ok"
    assert client.count(type="AnonymousCommuterId") == 0
    off = ServiceContext("privacy", client, load_settings(Settings(environ={
        "CITYOS_PRIVACY_RETENTION_INTERVAL_S": "0"})), Settings())  # fmt: skip
    asyncio.run(run_retention_job(off))
    assert off.state["retention"] == "off"
