"""`nixa resources add|list|remove`: registering the agency APIs that accept NIXA access tokens."""

from __future__ import annotations

import json

from tests.conftest import register_client, uid
from tests.oidc.test_audit import events_for


def test_add_list_update_remove(run, nixa):  # noqa: ANN001, F811
    api_client = register_client(nixa)
    identifier = f"https://api.thue.example.vn/{uid()}"
    r = run("resources", "add", identifier, "--name", "API Thuế", "--scope", "tax:read", "--scope", "tax:write",
            "--client", api_client.client_id)
    assert r.exit_code == 0 and r.output.strip() == f"created {identifier}", r.output
    listed = {e["identifier"]: e for e in json.loads(run("resources", "list", "--json").output)}
    assert listed[identifier] == {"identifier": identifier, "name": "API Thuế", "scopes": ["tax:read", "tax:write"],
                                  "client_id": api_client.client_id}
    assert identifier in run("resources", "list").output
    r = run("resources", "add", identifier, "--name", "API Thuế", "--scope", "tax:read", "--client", api_client.client_id)
    assert r.output.strip() == f"updated {identifier}"
    assert {e.identifier: e for e in nixa.resources.all()}[identifier].scopes == {"tax:read"}
    changed = [e.data for e in events_for(nixa, type="resource.changed") if e.data.get("resource") == identifier]
    assert [d.get("created") for d in changed] == [True, False]
    r = run("resources", "remove", identifier)
    assert r.exit_code == 0 and identifier not in run("resources", "list").output
    removed = events_for(nixa, type="resource.changed")[-1].data
    assert removed["resource"] == identifier and removed["removed"] is True
    assert run("resources", "remove", identifier).exit_code == 2


def test_add_refuses_a_bad_identifier_or_client(run, nixa):  # noqa: ANN001, F811
    api_client = register_client(nixa)
    for identifier, client_id in (("https://api.example.vn/x#frag", api_client.client_id), ("not-a-uri", api_client.client_id),
                                  (f"https://api.example.vn/{uid()}", "no-such-client")):
        r = run("resources", "add", identifier, "--name", "API", "--client", client_id)
        assert r.exit_code == 2 and "nixa:" in r.output, r.output
