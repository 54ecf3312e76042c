"""The reference of the side-by-side benchmark (bench/reference/server.mjs, panva's oidc-provider)
starts from the configuration bench.run writes and serves what the benchmark loads, like the NIXA
it is compared with: NIXA's endpoint paths, ES256 JWT access tokens for the API asked with
`resource`, introspection, UserInfo, and a sign-in form that refuses a wrong password. The
framework ceilings answer too, each on the core it was pinned to."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest

from bench import nixa, servers
from bench.load import code_flow, make_engine
from bench.run import Target, prepare_tokens


@pytest.fixture(scope="module")
def reference(tmp_path_factory):  # noqa: ANN001, ANN201
    servers.ensure_reference()
    population = nixa.Population.make(2)
    port = servers.free_port()
    config = servers.reference_config(f"http://127.0.0.1:{port}", port, population.secrets, population.citizens,
                                      nixa.BENCH_API, nixa.BENCH_API_OPAQUE, nixa.BENCH_SCOPE)
    server = servers.reference_server(config, tmp_path_factory.mktemp("reference"), None)
    try:
        server.wait_ready()
        yield server, population
    finally:
        server.stop()


def _claims(jwt: str) -> tuple[dict, dict]:
    head, body = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in jwt.split(".")[:2])
    return head, body


def test_discovery_names_nixas_paths_and_es256(reference):  # noqa: ANN001
    server, _ = reference
    meta = httpx.get(server.url + "/.well-known/openid-configuration", trust_env=False).json()
    assert meta["issuer"] == server.url
    assert {meta["authorization_endpoint"], meta["token_endpoint"], meta["introspection_endpoint"], meta["userinfo_endpoint"],
            meta["jwks_uri"]} == {server.url + p for p in ("/authorize", "/token", "/introspect", "/userinfo", "/jwks")}
    assert "client_credentials" in meta["grant_types_supported"] and "ES256" in meta["id_token_signing_alg_values_supported"]
    jwks = httpx.get(meta["jwks_uri"], trust_env=False).json()
    assert {k["alg"] for k in jwks["keys"]} == {"ES256", "RS256", "EdDSA"} and all("d" not in k for k in jwks["keys"])


def test_the_benchmark_paths_work_against_the_reference(reference):  # noqa: ANN001
    server, population = reference
    target = Target("oidc-provider", server.url, population.load_context(), [server.pid])
    prepare_tokens(target, "aiohttp", introspect_resource=nixa.BENCH_API_OPAQUE)  # raises unless token, flow and userinfo work
    head, claims = _claims(target.ctx["service_access_token"])
    assert head["alg"] == "ES256" and head["typ"] == "at+jwt"
    assert claims["aud"] == nixa.BENCH_API and claims["client_id"] == "bench-service" and claims["scope"] == nixa.BENCH_SCOPE
    with httpx.Client(base_url=server.url, trust_env=False) as c:
        r = c.post("/introspect", data={"token": target.ctx["introspected_token"]}, headers={"Authorization": target.ctx["api_basic"]})
        assert r.json()["active"] is True and r.json()["aud"] == nixa.BENCH_API_OPAQUE
        r = c.get("/userinfo", headers={"Authorization": "Bearer " + target.ctx["user_access_token"]})
        assert r.json()["name"] == population.citizens[-1]["claims"]["name"]  # the citizen the preparation signs in as
        r = c.post("/introspect", data={"token": "not-a-token"}, headers={"Authorization": target.ctx["api_basic"]})
        assert r.json() == {"active": False}


def test_the_sign_in_form_refuses_a_wrong_password(reference):  # noqa: ANN001
    import asyncio

    from bench.load import FlowFailed

    server, population = reference
    ctx = {**population.load_context(), "base_url": server.url}
    wrong = {"username": population.citizens[1]["username"], "password": "not-" + population.citizens[1]["password"]}

    async def go() -> str:
        http = make_engine("aiohttp", server.url, 2, 30.0)
        try:
            await code_flow(http, ctx, wrong)
        except FlowFailed as failed:
            return failed.label
        finally:
            await http.close()
        return "signed in"

    assert asyncio.run(go()) == "login_post: HTTP 400"


@pytest.mark.parametrize("make", [servers.starlette_ceiling, servers.node_ceiling], ids=["starlette", "node"])
def test_a_ceiling_answers_any_get_and_runs_on_the_core_it_was_given(make, tmp_path):  # noqa: ANN001
    core = frozenset({max(os.sched_getaffinity(0))})
    server = make(servers.free_port(), tmp_path / "ceiling.log", core)
    try:
        server.wait_ready()
        r = httpx.get(server.url + "/.well-known/openid-configuration", trust_env=False)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert os.sched_getaffinity(server.pid) == core
    finally:
        server.stop()
    assert not server.alive()
