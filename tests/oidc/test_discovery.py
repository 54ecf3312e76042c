"""Discovery (OIDC Discovery 1.0 §3, RFC 8414) and the JWKS (RFC 7517)."""

from __future__ import annotations

REQUIRED = ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
            "subject_types_supported", "id_token_signing_alg_values_supported"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_discovery_has_required_fields_and_matches_issuer(http):
    r = http.get("/.well-known/openid-configuration")
    assert r.status_code == 200
    doc = r.json()
    for name in REQUIRED:
        assert doc.get(name), name
    assert doc["issuer"] == "http://testserver"
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint",
                 "pushed_authorization_request_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert doc[name].startswith(doc["issuer"] + "/"), name
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "urn:nixa:loa:high" in doc["acr_values_supported"]
    assert doc["request_parameter_supported"] is False


def test_discovery_is_cacheable(http):
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        r = http.get(path)
        assert r.status_code == 200
        cc = r.headers["cache-control"]
        assert "max-age=" in cc and "no-store" not in cc


def test_oauth_metadata_matches_openid_configuration(http):
    assert http.get("/.well-known/oauth-authorization-server").json() == http.get("/.well-known/openid-configuration").json()


def test_jwks_every_key_has_kid_and_only_public_members(http):
    r = http.get("/jwks")
    assert r.status_code == 200
    assert "max-age=" in r.headers["cache-control"]
    keys = r.json()["keys"]
    assert keys
    kids = [k["kid"] for k in keys]
    assert all(kids) and len(set(kids)) == len(kids)
    for k in keys:
        assert not (PRIVATE_MEMBERS & set(k)), k
        assert k["use"] == "sig" and k["alg"] in ("ES256", "RS256", "EdDSA")
        assert k["kty"] in ("EC", "RSA", "OKP")


def test_jwks_publishes_every_active_key(nixa, http):
    kids = {k["kid"] for k in http.get("/jwks").json()["keys"]}
    for alg in ("ES256", "RS256", "EdDSA"):
        assert nixa.keys.active_kid(alg) in kids


def test_discovery_and_jwks_answer_304_to_the_etag_the_client_holds(http):  # noqa: ANN001
    for path in ("/.well-known/openid-configuration", "/jwks"):
        first = http.get(path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('"')
        again = http.get(path, headers={"If-None-Match": f'"other", {etag}'})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert http.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_the_jwks_etag_changes_with_the_keys(nixa, http):  # noqa: ANN001
    before = http.get("/jwks").headers["etag"]
    nixa.keys.rotate("ES256")
    nixa.keys.invalidate()  # this worker's view re-reads now (others within their refresh interval)
    after = http.get("/jwks")
    assert after.headers["etag"] != before
    assert http.get("/jwks", headers={"If-None-Match": before}).status_code == 200  # the old set is not "unchanged"
