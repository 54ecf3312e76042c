"""NIXA's side of the benchmark: its two backends (embedded SQLite + in-process store, or a
throwaway PostgreSQL + Redis from scripts/services.sh), the schema, the seed (the clients and
citizens the reference is configured with too), and the Redis memory of SSO sessions."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.load import basic_auth

ROOT = Path(__file__).resolve().parent.parent
BENCH_API = "https://api.bench.example/v1"  # a resource identifier (RFC 8707), never contacted
BENCH_API_OPAQUE = "https://api.bench.example/opaque"  # the reference's opaque-token twin (see reference/server.mjs)
BENCH_SCOPE = "bench.read"
REDIRECT_URI = "http://127.0.0.1/bench/callback"  # never contacted: the benchmark reads the code off the Location header


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str
    service_pids: list[int] = field(default_factory=list)  # PostgreSQL postmaster, Redis


@contextmanager
def backend(name: str, tmp: Path) -> Iterator[Backend]:
    if name == "embedded":
        yield Backend(name, f"sqlite:///{(tmp / 'var' / 'nixa.db').as_posix()}", "")
        return
    services = tmp / "services"
    print("  starting PostgreSQL + Redis (scripts/services.sh)...", flush=True)
    try:
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start", str(services)], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        env = dict(line.split("=", 1) for line in (services / "env").read_text().split() if "=" in line)
        pids = []
        try:
            pgdata = Path((services / "pgdata").read_text().strip())
            pids.append(int((pgdata / "postmaster.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        try:
            pids.append(int((services / "redis.pid").read_text().strip()))
        except (OSError, ValueError):
            pass
        yield Backend(name, env["NIXA_TEST_DATABASE_URL"], env["NIXA_TEST_REDIS_URL"], pids)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "stop", str(services)], timeout=120,
                       stdout=subprocess.DEVNULL)


def server_env(be: Backend, tmp: Path, issuer: str, master_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIXA_")}
    env.update(NIXA_ISSUER=issuer, NIXA_DATABASE_URL=be.database_url, NIXA_REDIS_URL=be.redis_url,
               NIXA_VAR_DIR=str(tmp / "var"), NIXA_MASTER_KEY=master_key)
    return env


def migrate(env: dict[str, str]) -> None:
    r = subprocess.run([sys.executable, "-m", "admin.cli", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"nixa migrate failed:\n{r.stdout}\n{r.stderr}")


@dataclass(frozen=True)
class Population:
    """The clients' secrets and the citizens, made once per run and given to every server."""

    secrets: dict[str, str]
    citizens: list[dict]

    @classmethod
    def make(cls, n_citizens: int) -> Population:
        """`n_citizens` for the code flows under load, and one more that only bench.run's token
        preparation signs in as (a throttled load account cannot stop the preparation)."""
        client_secrets = {cid: secrets.token_urlsafe(32) for cid in ("bench-web", "bench-service", "bench-api")}
        client_secrets["redirect_uri"] = REDIRECT_URI
        citizens = []
        for i in range(n_citizens + 1):
            username = f"bench{i}"
            citizens.append({"username": username, "password": secrets.token_urlsafe(12), "claims": {
                "name": f"Nguyễn Văn Thử {i}", "given_name": "Thử", "family_name": "Nguyễn", "email": f"{username}@example.vn",
                "preferred_username": username,
            }})
        return cls(client_secrets, citizens)

    def load_context(self) -> dict:
        """What the load generator needs to act as these clients and citizens."""
        return {
            "web_client_id": "bench-web",
            "web_basic": basic_auth("bench-web", self.secrets["bench-web"]),
            "redirect_uri": REDIRECT_URI,
            "service_basic": basic_auth("bench-service", self.secrets["bench-service"]),
            "service_scope": BENCH_SCOPE,
            "service_resource": BENCH_API,
            "api_basic": basic_auth("bench-api", self.secrets["bench-api"]),
            "citizens": [{"username": c["username"], "password": c["password"]} for c in self.citizens[:-1]],
            "prepare_citizen": {"username": self.citizens[-1]["username"], "password": self.citizens[-1]["password"]},
        }


def seed(be: Backend, tmp: Path, issuer: str, master_key: str, population: Population) -> dict:
    """Clients and citizens through the Python API, on the database the server will use."""
    from idp.app import Nixa
    from idp.settings import Settings

    settings = Settings(issuer=issuer, database_url=be.database_url, redis_url=be.redis_url, var_dir=tmp / "var",
                        master_key=master_key)
    nixa = Nixa(settings)
    s = population.secrets
    nixa.clients.upsert({
        "client_id": "bench-web",
        "client_name": "Benchmark web app",
        "client_secret": s["bench-web"],
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "nixa_first_party": True,  # no consent page: a flow is authorize → login → token
    })
    nixa.clients.upsert({
        "client_id": "bench-service",
        "client_name": "Benchmark service",
        "client_secret": s["bench-service"],
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": BENCH_SCOPE,
    })
    # The API the service calls: its tokens are asked for with `resource` and it introspects
    # them with its own client (RFC 8707 / RFC 7662), the path an agency API takes.
    nixa.clients.upsert({
        "client_id": "bench-api",
        "client_name": "Benchmark API (resource server)",
        "client_secret": s["bench-api"],
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "",
    })
    nixa.resources.upsert(BENCH_API, name="Benchmark API", scopes=[BENCH_SCOPE], client_id="bench-api")
    for c in population.citizens:
        nixa.people.add_local_account(c["username"], c["password"], dict(c["claims"]))
    nixa.db.engine.dispose()
    return {"clients": ["bench-web (confidential, first party)", "bench-service (client_credentials)",
                        f"bench-api (introspects the tokens for resource {BENCH_API})"],
            "citizens": len(population.citizens)}


# ---- Redis memory of SSO sessions ------------------------------------------------------------------

USER_AGENT = ("Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Mobile Safari/537.36")


def _other_database(redis_url: str, db: int) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def sso_session_memory(redis_url: str, count: int, threads: int = 8, db: int = 15) -> dict:
    """Create `count` SSO sessions through the real repository (idp.login.session.Sessions over
    the Redis store, NIXA's key prefix, in a database of the throwaway Redis nothing else uses):
    each a password sign-in from a phone with one app given a session, as the login route
    makes them. Returns Redis's used_memory before and after, and the cost per 100,000."""
    import redis

    from idp.login.session import Sessions
    from idp.settings import Settings
    from idp.store.ephemeral import RedisStore

    url = _other_database(redis_url, db)
    settings = Settings()
    admin = redis.Redis.from_url(url)
    admin.flushdb()
    sessions = Sessions(RedisStore(url), settings.sso_session_ttl, time.time, idle_ttl=settings.sso_idle_ttl or None)
    before = admin.info("memory")

    def make(i: int) -> None:
        cookie, session = sessions.establish(None, person_id=secrets.token_hex(16), loa=1, amr=["pwd"], method="local",
                                             user_agent=USER_AGENT, ip=f"203.0.113.{i % 254 + 1}")
        sessions.add_client(cookie, session, "bench-web")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(make, range(count), chunksize=256))
    seconds = time.monotonic() - t0
    after = admin.info("memory")
    keys = admin.dbsize()
    admin.flushdb()
    used = after["used_memory"] - before["used_memory"]
    return {"sessions": count, "keys": keys, "seconds": round(seconds, 1), "used_memory_before": before["used_memory"],
            "used_memory_after": after["used_memory"], "bytes_per_session": round(used / count, 1) if count else None,
            "mb_per_100k": round(used * 100_000 / count / 1e6, 1) if count else None}
