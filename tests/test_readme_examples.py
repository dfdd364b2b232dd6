"""The README's curl examples, run as written against the demo the README says to start first.

The examples are parsed from README.md itself (so the README and this test cannot drift),
the demo is loaded by ``cityos demo --no-serve`` into a database of its own, and the hub's
application serves that database in process.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

README = Path(__file__).resolve().parents[1] / "README.md"


def curl_examples() -> list[list[str]]:
    """Every ``curl`` command in the README's "Using the hub" section, as shell words."""
    text = README.read_text()
    section = text.split("## Using the hub", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        words = shlex.split(block, comments=False)
        starts = [i for i, w in enumerate(words) if w == "curl"]
        if not starts:
            continue
        for a, b in zip(starts, [*starts[1:], len(words)], strict=True):
            commands.append(words[a:b])
    return commands


def as_request(words: list[str]) -> dict[str, object]:
    """A curl command line (-s -i -g -H -d, the options the README uses) as a request."""
    headers: dict[str, str] = {}
    body: str | None = None
    url = None
    i = 1
    while i < len(words):
        w = words[i]
        if w == "-H":
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif w == "-d":
            body = words[i + 1]
            i += 2
        elif w.startswith("-"):
            assert set(w[1:]) <= set("sig"), f"an option this test does not read: {w}"
            i += 1
        else:
            url = w
            i += 1
    assert url is not None
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("127.0.0.1", 1026)  # the demo's address
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return {
        "method": "POST" if body is not None else "GET",
        "url": path,
        "headers": headers,
        "content": body,
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The hub serving what ``cityos demo`` loaded (a minute of replay is enough)."""
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    done = subprocess.run(
        [sys.executable, "-m", "cityos.cli", "demo", "--no-serve", "--minutes", "1",
         "--speed", "max", "--database-url", f"sqlite:///{db}", "--json"],
        capture_output=True, text=True, timeout=300, cwd=db.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    from cityos.config import Settings
    from cityos.web.app import create_app

    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}"))) as client:
        yield client


def test_the_readme_has_its_examples() -> None:
    examples = curl_examples()
    assert len(examples) >= 3
    assert any("/subscriptions" in " ".join(words) for words in examples)


def test_the_readme_examples_work_against_the_demo(demo: TestClient) -> None:
    created = []
    for words in curl_examples():
        request = as_request(words)
        r = demo.request(**request)  # type: ignore[arg-type]
        assert r.status_code < 300, (" ".join(words)[:200], r.status_code, r.text)
        if request["method"] == "POST":
            assert r.status_code == 201
            created.append(r.headers["Location"])
            continue
        found = r.json()
        assert isinstance(found, list) and found, f"nothing found: {' '.join(words)}"
        ids = {e["id"] for e in found}
        if "pm25" in str(request["url"]):
            # the demo's station at Wat Phnom, and the reading the README just created
            assert "urn:ngsi-ld:AirQualityObserved:wat-phnom" in ids or any(
                c.rsplit("/", 1)[-1] in ids for c in created
            ), ids
    entity = next(c for c in created if "/entities/" in c)
    station = "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:wat-phnom"
    mine, theirs = (demo.get(u).json() for u in (entity, station))
    assert mine["type"] == theirs["type"]  # in the demo's vocabulary, as its stations are
    pm25 = [k for k in theirs if k.endswith("pm25")]
    assert pm25 and pm25[0] in mine  # the same pm25, not another term of the same name


def test_the_demo_station_at_wat_phnom_is_what_the_readme_queries_find(demo: TestClient) -> None:
    """The README's queries find what the demo loaded, not only what the README created."""
    queries = [as_request(w) for w in curl_examples() if as_request(w)["method"] == "GET"]
    found: set[str] = set()
    for q in queries:
        r = demo.request(**q)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        found |= {e["id"] for e in r.json()}
    assert "urn:ngsi-ld:AirQualityObserved:wat-phnom" in found, found
