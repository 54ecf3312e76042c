"""The PKCS#11 backend against a throwaway SoftHSM2 token (tests/keys/conftest.py): tokens from a
real code flow are signed inside the token and verify against /jwks, with joserfc and with
plain `cryptography` from the published JWK; the private keys cannot leave the token; revoke
destroys them; a wrong PIN or an unreachable HSM is a refusal to start."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from admin.cli import app as cli
from idp.store.db import Database
from idp.store.models import AuditEvent, SigningKey
from keys.pkcs11 import HsmProblem
from tests.conftest import REDIS_URL, code_flow, free_port, make_citizen, make_settings, register_client
from tests.keys.conftest import new_database, new_master_key

ROOT = Path(__file__).resolve().parents[2]


def b64d(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def verified_independently(token: str, jwks: dict) -> dict:
    """The JWS checked with `cryptography` alone, from the published JWK's numbers (no JOSE
    library): RFC 7515 signing input, RFC 7518 §3.3/§3.4 and RFC 8037 signatures."""
    head, body, sig = token.split(".")
    header, signature, message = json.loads(b64d(head)), b64d(sig), f"{head}.{body}".encode()
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    if header["alg"] == "ES256":
        assert len(signature) == 64  # raw r || s, not DER
        public = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"])), int.from_bytes(b64d(jwk["y"])), ec.SECP256R1()).public_key()
        der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    elif header["alg"] == "RS256":
        public = rsa.RSAPublicNumbers(int.from_bytes(b64d(jwk["e"])), int.from_bytes(b64d(jwk["n"]))).public_key()
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    elif header["alg"] == "EdDSA":
        Ed25519PublicKey.from_public_bytes(b64d(jwk["x"])).verify(signature, message)
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    return json.loads(b64d(body))


@pytest.fixture(scope="module")
def hsm_world(softhsm, tmp_path_factory):  # noqa: ANN001, ANN201
    """A NIXA whose signing keys are made in the token, on a database of its own."""
    from idp.app import Nixa, create_app

    folder = tmp_path_factory.mktemp("hsm-nixa")
    with new_database(folder) as url:
        settings = make_settings(folder, url, new_master_key(), **softhsm.settings())
        nixa = Nixa(settings)
        app = create_app(settings, nixa=nixa)
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as http:
            http.app_under_test = app
            yield nixa, http
        nixa.audit.close()
        nixa.db.engine.dispose()


def signed_in(http, client, **kw) -> dict:  # noqa: ANN001
    """A code flow in a browser of its own (no SSO session from an earlier test)."""
    with TestClient(http.app_under_test, base_url="http://testserver", follow_redirects=False) as browser:
        return code_flow(browser, http, client, make_citizen(browser.app.state.nixa), **kw)


def rows(nixa) -> list[SigningKey]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(SigningKey)))


def cli_env(nixa, softhsm) -> dict[str, str]:  # noqa: ANN001
    s = nixa.settings
    return {"NIXA_DATABASE_URL": s.database_url, "NIXA_VAR_DIR": str(s.var_dir), "NIXA_MASTER_KEY": s.master_key,
            "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": s.issuer, **softhsm.env()}


def test_every_key_is_made_in_the_token_and_only_its_public_half_is_in_the_database(hsm_world):
    nixa, http = hsm_world
    keys = rows(nixa)
    assert {(k.alg, k.state) for k in keys} >= {(a, st) for a in ("ES256", "RS256", "EdDSA") for st in ("active", "pending")}
    published = {k["kid"]: k for k in http.get("/jwks").json()["keys"]}
    for k in keys:
        assert k.backend == "pkcs11" and bytes(k.private_enc) == b""  # nothing to open, nothing to steal from a dump
        assert not {"d", "p", "q"} & set(k.public_jwk)
        assert nixa.hsm.protection(k.kid)["extractable"] is False
        assert published[k.kid]["kid"] == k.kid and published[k.kid]["alg"] == k.alg  # same kid rules as the database backend
        assert k.kid.startswith(k.alg.lower() + "-")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_an_id_token_from_a_code_flow_is_signed_inside_the_hsm_and_verifies_against_the_jwks(hsm_world, alg):
    nixa, http = hsm_world
    client = register_client(nixa, id_token_signed_response_alg=alg)
    tokens = signed_in(http, client, scope="openid profile")
    jwks = http.get("/jwks").json()

    decoded = jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks), algorithms=[alg])  # joserfc
    claims = verified_independently(tokens["id_token"], jwks)  # and without any JOSE library
    assert decoded.header["alg"] == alg and claims == decoded.claims
    assert claims["aud"] == client.client_id and claims["nonce"] == tokens["_q"]["nonce"]
    kid = decoded.header["kid"]
    assert kid == nixa.keys.active_kid(alg)
    row = next(k for k in rows(nixa) if k.kid == kid)
    # The only private half of this key is in the token, so the token made the signature.
    assert row.backend == "pkcs11" and bytes(row.private_enc) == b"" and kid in nixa.hsm.kids()
    at = verified_independently(tokens["access_token"], jwks)  # the JWT access token too (default alg)
    assert at["client_id"] == client.client_id
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200


def test_the_private_keys_cannot_leave_the_token(hsm_world):
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as px

    nixa, _ = hsm_world
    session = nixa.hsm._session  # the token as any program logged in with the PIN sees it
    wrapping = session.generate_key(KeyType.AES, 256, store=False, template={Attribute.WRAP: True, Attribute.EXTRACTABLE: True})
    for row in rows(nixa):
        assert nixa.hsm.protection(row.kid) == {"sensitive": True, "extractable": False, "never_extractable": True,
                                                "always_sensitive": True}
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=row.kid.encode())
        secret = Attribute.PRIVATE_EXPONENT if row.alg == "RS256" else Attribute.VALUE  # the private scalar of EC and Ed25519
        with pytest.raises(px.AttributeSensitive):
            private[secret]
        with pytest.raises((px.KeyUnextractable, px.KeyNotWrappable)):
            wrapping.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        with pytest.raises(pkcs11.PKCS11Error):  # PKCS#11: CKA_EXTRACTABLE can only go from true to false
            private[Attribute.EXTRACTABLE] = True
        assert nixa.hsm.protection(row.kid)["extractable"] is False


def test_revoke_destroys_the_key_in_the_token_and_takes_it_out_of_the_jwks(hsm_world, softhsm, monkeypatch):
    nixa, http = hsm_world
    monkeypatch.setattr(nixa.keys, "refresh_every", 0)
    client = register_client(nixa)
    tokens = signed_in(http, client)
    kid = jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).header["kid"]
    next_key = next(k.kid for k in rows(nixa) if k.alg == "ES256" and k.state == "pending")

    out = CliRunner().invoke(cli, ["--actor", "duty officer", "keys", "revoke", kid, "--reason", "token lost"], env=cli_env(nixa, softhsm))
    assert out.exit_code == 0, out.output
    assert "pkcs11" in out.output

    assert kid not in {k["kid"] for k in http.get("/jwks").json()["keys"]}
    assert kid not in nixa.hsm.kids()  # destroyed in the token, not just forgotten
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    with pytest.raises(Exception):
        nixa.keys.verify(tokens["id_token"])
    assert nixa.keys.active_kid("ES256") == next_key
    fresh = signed_in(http, client)  # the next key signs, inside the token
    assert verified_independently(fresh["id_token"], http.get("/jwks").json())["aud"] == client.client_id
    with Database(nixa.settings.database_url).session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.type == "key.revoked").order_by(AuditEvent.id.desc())).first()
    assert event.data["kid"] == kid and event.data["backend"] == "pkcs11" and event.data["now_active"] == next_key
    assert event.data["reason"] == "token lost" and event.data["actor"]["name"] == "duty officer" and event.data["actor"]["os_user"]


def test_keys_list_names_state_alg_kid_backend_and_times(hsm_world, softhsm):
    nixa, _ = hsm_world
    out = CliRunner().invoke(cli, ["keys", "list", "--json"], env=cli_env(nixa, softhsm))
    assert out.exit_code == 0, out.output
    listed = [json.loads(line) for line in out.output.splitlines()]
    assert {k["kid"] for k in listed} == {k.kid for k in rows(nixa)}
    for k in listed:
        assert k["backend"] == "pkcs11" and k["state"] in ("pending", "active", "retired") and k["created_at"] > 0
        assert (k["activated_at"] is not None) == (k["state"] != "pending")
        assert (k["retired_at"] is not None) == (k["state"] == "retired")
    table = CliRunner().invoke(cli, ["keys", "list"], env=cli_env(nixa, softhsm)).output
    assert "new keys are made in: pkcs11" in table and softhsm.pin not in table
    assert softhsm.pin not in repr(nixa.settings) and softhsm.pin not in str(nixa.settings)


def test_key_commands_refuse_in_one_line(hsm_world, softhsm):
    nixa, _ = hsm_world
    for args, said in ((["keys", "rotate", "--alg", "HS256"], "unknown alg HS256"), (["keys", "retire", "es256-none"], "no signing key es256-none"),
                       (["keys", "revoke", "es256-none"], "no signing key es256-none")):
        out = CliRunner().invoke(cli, args, env=cli_env(nixa, softhsm))
        assert out.exit_code == 2 and said in out.output and "Traceback" not in out.output, out.output


def run_nixa(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`nixa …` in a process of its own, as an operator or a worker starts it."""
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("NIXA_")} | env
    return subprocess.run([sys.executable, "-m", "admin.cli", *args], env=full, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_a_wrong_pin_refuses_to_start_and_the_pin_is_never_shown(hsm_world, softhsm, tmp_path):
    nixa, _ = hsm_world
    env = cli_env(nixa, softhsm)
    wrong = "0000" + softhsm.pin[4:][::-1]
    served = run_nixa(["serve", "--port", str(free_port())], env | {"NIXA_PKCS11_PIN": wrong})
    assert served.returncode == 2, served.stdout + served.stderr
    assert "refused the PIN (NIXA_PKCS11_PIN)" in served.stderr
    assert wrong not in served.stdout + served.stderr and softhsm.pin not in served.stdout + served.stderr

    pin_file = tmp_path / "pin"
    pin_file.write_text(wrong + "\n", encoding="utf-8")
    from_file = {k: v for k, v in env.items() if k != "NIXA_PKCS11_PIN"} | {"NIXA_PKCS11_PIN_FILE": str(pin_file)}
    refused = run_nixa(["keys", "list"], from_file)
    assert refused.returncode == 2 and "refused the PIN" in refused.stderr and wrong not in refused.stderr
    pin_file.write_text(softhsm.pin + "\n", encoding="utf-8")  # the right PIN from the file: it starts
    listed = run_nixa(["keys", "list"], from_file)
    assert listed.returncode == 0, listed.stderr
    assert "pkcs11" in listed.stdout and softhsm.pin not in listed.stdout + listed.stderr


def test_an_unreachable_or_misconfigured_hsm_refuses_to_start(hsm_world, softhsm, tmp_path):
    from idp.app import Nixa

    nixa, _ = hsm_world
    base = dict(database_url=nixa.settings.database_url, master_key=nixa.settings.master_key)

    def start(**kw):  # noqa: ANN003, ANN202
        return Nixa(make_settings(tmp_path, base["database_url"], base["master_key"], **{**softhsm.settings(), **kw}))

    with pytest.raises(HsmProblem, match="unreachable.*cannot open shared object"):
        start(pkcs11_module=str(tmp_path / "no-such-module.so"))
    with pytest.raises(HsmProblem, match="no token labelled 'elsewhere'"):
        start(pkcs11_token_label="elsewhere")
    with pytest.raises(HsmProblem, match="NIXA_PKCS11_MODULE"):
        start(pkcs11_module="")
    with pytest.raises(HsmProblem, match="NIXA_PKCS11_PIN"):
        start(pkcs11_pin="")
    with pytest.raises(HsmProblem, match="logged in with another PIN"):  # same process, other PIN: not trusted blindly
        start(pkcs11_pin=softhsm.pin + "x")
    # The keys live in the HSM: a worker without the HSM configured does not start half-working.
    with pytest.raises(HsmProblem, match="lives in an HSM"):
        start(key_backend="database", pkcs11_module="")
    out = run_nixa(["keys", "list"], cli_env(nixa, softhsm) | {"NIXA_PKCS11_TOKEN_LABEL": "elsewhere"})
    assert out.returncode == 2 and "no token labelled 'elsewhere'" in out.stderr and "Traceback" not in out.stderr


def test_readiness_names_the_token_and_fails_when_a_signing_key_is_gone(softhsm, tmp_path):
    from idp.app import Nixa, create_app

    with new_database(tmp_path) as url:
        nixa = Nixa(make_settings(tmp_path, url, new_master_key(), **softhsm.settings()))
        with TestClient(create_app(nixa.settings, nixa=nixa)) as c:
            r = c.get("/readyz")
            assert r.status_code == 200 and r.json()["checks"]["hsm"] == {"ok": True, "detail": f"3 active key(s) in token {softhsm.label!r}"}
            nixa.hsm.destroy(nixa.keys.active_kid("RS256"))  # someone deleted a key in the token behind NIXA's back
            r = c.get("/readyz")
            assert r.status_code == 503 and not r.json()["checks"]["hsm"]["ok"]
            assert "is not in token" in r.json()["checks"]["hsm"]["detail"]
        nixa.audit.close()
        nixa.db.engine.dispose()


def test_many_threads_sign_at_once_through_the_token(hsm_world):
    """Requests run in a thread pool; they share the process's one session, whose operations
    python-pkcs11 serializes, so no signature comes out mixed up or refused."""
    from concurrent.futures import ThreadPoolExecutor

    nixa, http = hsm_world
    jwks = http.get("/jwks").json()

    def sign(i: int) -> str:
        return nixa.keys.sign({"iss": "x", "n": i}, "ES256")

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(sign, range(80)))
    assert [verified_independently(t, jwks)["n"] for t in tokens] == list(range(80))


def test_keys_made_for_a_change_that_fails_are_destroyed_in_the_token(hsm_world):
    nixa, _ = hsm_world
    made: list[str] = []
    before = nixa.hsm.kids()
    with pytest.raises(RuntimeError, match="the transaction failed"):
        with nixa.keys._making(made):
            nixa.keys._new_row("ES256", "pending", made)
            assert set(made) <= nixa.hsm.kids()
            raise RuntimeError("the transaction failed")  # e.g. the commit, after the key was generated
    assert made == [] and nixa.hsm.kids() == before


def test_a_key_another_process_rotated_in_signs_here(hsm_world, softhsm, monkeypatch):
    """Workers are processes, each with its own session: an operator's `nixa keys rotate` makes
    the next pending key in the token, and this worker signs with the key it promoted."""
    nixa, http = hsm_world
    monkeypatch.setattr(nixa.keys, "refresh_every", 0)
    before = {k.kid for k in rows(nixa)}
    out = run_nixa(["--actor", "operator", "keys", "rotate", "--alg", "ES256"], cli_env(nixa, softhsm))
    assert out.returncode == 0 and "ES256: rotated" in out.stdout, out.stderr
    made_elsewhere = next(k.kid for k in rows(nixa) if k.kid not in before)  # the new pending key, made by the other process
    assert made_elsewhere in nixa.hsm.kids()
    assert run_nixa(["keys", "rotate", "--alg", "ES256"], cli_env(nixa, softhsm)).returncode == 0  # now it signs
    assert nixa.keys.active_kid("ES256") == made_elsewhere
    token = signed_in(http, register_client(nixa))["id_token"]
    assert json.loads(b64d(token.split(".")[0]))["kid"] == made_elsewhere
    assert verified_independently(token, http.get("/jwks").json())["iss"] == nixa.settings.issuer


def test_a_session_that_ends_under_a_worker_is_opened_again(hsm_world):
    """A network HSM restarting ends the sessions; the next signature logs in anew with the PIN."""
    nixa, http = hsm_world
    dead = nixa.hsm._session
    dead.close()  # the last session of this process: the token logs the process out
    token = nixa.keys.sign({"iss": "x", "n": 7}, "ES256")
    assert verified_independently(token, http.get("/jwks").json())["n"] == 7
    assert nixa.hsm._session is not dead


def test_a_signing_key_destroyed_in_the_token_behind_nixa_is_a_503_until_it_is_revoked(hsm_world, monkeypatch):
    # Someone with the token's PIN (another program, a careless operator) destroys the active key
    # while NIXA runs. No token can be signed: the client hears 503 temporarily_unavailable with
    # Retry-After, never a 500 or an unsigned answer; once an operator revokes the lost key, the
    # next key signs.
    from pkcs11 import ObjectClass

    nixa, http = hsm_world
    monkeypatch.setattr(nixa.keys, "refresh_every", 0)
    client = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[], scope="")
    ask = lambda: http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))  # noqa: E731
    assert ask().status_code == 200
    kid = nixa.keys.active_kid(nixa.settings.default_signing_alg)
    nixa.hsm._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=kid.encode()).destroy()
    r = ask()
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"], r.text
    assert "access_token" not in r.text
    assert nixa.keys.revoke(kid) is not None
    r = ask()
    assert r.status_code == 200, r.text
    assert jwt.decode(r.json()["access_token"], KeySet.import_key_set(http.get("/jwks").json())).header["kid"] != kid
