"""A real OpenLDAP directory on loopback: the stand-in for an agency staff directory (G2E).

Runs Debian's slapd (packages `slapd ldap-utils`) with a generated `slapd.conf` in a working
directory of its own, an mdb database under the suffix `dc=gov,dc=vn`, the schemas core, cosine,
inetorgperson, nis (and dyngroup, for memberOf), and `staff.ldif` loaded with `slapd -T add`.

    python -m connectors.ldap.sandbox --host 127.0.0.1 --port 3890 --dir var/ldap

prints one JSON line (`url`, `connector_config` for LdapConnector) once slapd answers, stays in
the foreground, and stops slapd on SIGTERM/SIGINT. The same values are in DIR/sandbox.json.
Tests use the Python API:

    with start_directory(tmp_path, 0) as directory:   # port 0: pick a free loopback port
        LdapConnector(ConnectorContext("mof", directory.connector_config(), store))

The directory is what a real one looks like to NIXA:
- a read-only service account `cn=nixa,ou=services,dc=gov,dc=vn` (random password per
  directory) that may search people and groups but never read `userPassword`;
- anonymous binds refused, anonymous reads refused, passwords only usable for `auth`;
- the ppolicy overlay: "disabled" is an administrative lock, `pwdAccountLockedTime:
  000001010000Z`, which slapd enforces on bind (see staff.ldif);
- the dynlist overlay computes `memberOf` on people from `groupOfNames` (no stale values);
- optional StartTLS (`--tls`) with a throwaway CA written to DIR/tls/ca.pem.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import ldap3

from connectors.sandbox_tls import write_tls_files
from connectors.sandbox_process import die_with_parent

SUFFIX = "dc=gov,dc=vn"
AGENCY_BASE_DN = f"ou=mof,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=nixa,ou=services,{SUFFIX}"
POLICY_DN = f"cn=default,ou=policies,{SUFFIX}"
STAFF_LDIF = Path(__file__).with_name("staff.ldif")

# Where distributions put slapd, its schemas and its modules (Debian first).
SLAPD_CANDIDATES = ("/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/libexec/slapd", "/usr/local/libexec/slapd")
SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap", "/usr/local/libexec/openldap")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "dyngroup")
MODULES = ("back_mdb", "ppolicy", "dynlist")


class SandboxError(RuntimeError):
    pass


def ssha(password: str) -> str:
    """RFC 2307-style salted SHA-1, the scheme every slapd build verifies."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def find_slapd() -> str:
    found = shutil.which("slapd") or next((p for p in SLAPD_CANDIDATES if os.access(p, os.X_OK)), None)
    if not found:
        raise SandboxError("slapd not found: install the Debian packages `slapd ldap-utils`")
    return found


def _first_dir(candidates: tuple[str, ...], what: str) -> Path | None:
    for candidate in candidates:
        if Path(candidate).is_dir():
            return Path(candidate)
    if what:
        raise SandboxError(f"{what} not found in any of {', '.join(candidates)}")
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render_slapd_conf(workdir: Path, *, admin_password: str, tls: bool) -> str:
    schema_dir = _first_dir(SCHEMA_DIRS, "OpenLDAP schema directory")
    module_dir = _first_dir(MODULE_DIRS, "")
    lines = [f"include {schema_dir / f'{name}.schema'}" for name in SCHEMAS]
    if module_dir is not None:
        lines.append(f"modulepath {module_dir}")
        # A module built into slapd has no file; loading it again would be an error.
        lines += [f"moduleload {name}" for name in MODULES if (module_dir / f"{name}.so").exists() or (module_dir / f"{name}.la").exists()]
    lines += [
        f"pidfile {workdir / 'slapd.pid'}",
        f"argsfile {workdir / 'slapd.args'}",
        "disallow bind_anon",
        "password-hash {SSHA}",
        "sizelimit 500",
    ]
    if tls:
        lines += [
            f"TLSCACertificateFile {workdir / 'tls' / 'ca.pem'}",
            f"TLSCertificateFile {workdir / 'tls' / 'server.pem'}",
            f"TLSCertificateKeyFile {workdir / 'tls' / 'server.key'}",
        ]
    lines += [
        "",
        "database mdb",
        "maxsize 67108864",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ADMIN_DN}"',
        f"rootpw {ssha(admin_password)}",
        f"directory {workdir / 'data'}",
        "index objectClass eq",
        "index uid,mail,employeeNumber eq",
        "index member eq",
        "index entryUUID eq",
        "",
        "overlay ppolicy",
        f'ppolicy_default "{POLICY_DN}"',
        "ppolicy_hash_cleartext",
        "",
        "overlay dynlist",
        "dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames",
        "",
        # slapd.access(5): first match wins. The service account reads people and groups;
        # passwords are only ever used to authenticate; nobody else reads anything.
        f'access to dn.subtree="ou=policies,{SUFFIX}" by * none',
        "access to attrs=userPassword by anonymous auth by * none",
        f'access to * by dn.exact="{SERVICE_DN}" read by self read by * none',
        "",
    ]
    return "\n".join(lines)


def infrastructure_ldif(service_password: str) -> str:
    return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: gov
o: Chính phủ Việt Nam (sandbox)

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: nixa
description: NIXA: tài khoản dịch vụ chỉ đọc / read-only service account
userPassword: {ssha(service_password)}

dn: ou=policies,{SUFFIX}
objectClass: organizationalUnit
ou: policies

dn: {POLICY_DN}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
pwdMustChange: TRUE
pwdAllowUserChange: TRUE

"""


@dataclass
class DirectoryHandle:
    """A running (or stopped) sandbox slapd; `start()` again reuses its data and port."""

    admin_dn: ClassVar[str] = ADMIN_DN
    service_dn: ClassVar[str] = SERVICE_DN
    base_dn: ClassVar[str] = AGENCY_BASE_DN
    suffix: ClassVar[str] = SUFFIX

    workdir: Path
    host: str
    port: int
    tls: bool
    admin_password: str
    service_password: str
    slapd: str
    die_with_parent: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        return str(self.workdir / "tls" / "ca.pem") if self.tls else None

    @property
    def log_file(self) -> Path:
        """slapd's access log (`-d stats`): one line per connection and operation."""
        return self.workdir / "slapd.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def connector_config(self) -> dict[str, Any]:
        """A working LdapConnector configuration for this directory."""
        config: dict[str, Any] = {
            "url": self.url,
            "bind_dn": SERVICE_DN,
            "bind_password": self.service_password,
            "base_dn": f"ou=people,{AGENCY_BASE_DN}",
            "group_base_dn": f"ou=groups,{AGENCY_BASE_DN}",
            "display_name_vi": "Cán bộ Bộ Tài chính",
            "display_name_en": "Ministry of Finance staff",
        }
        if self.tls:
            config.update(use_starttls=True, ca_file=self.ca_file)
        return config

    def admin_connection(self, timeout: int = 5) -> ldap3.Connection:
        """A connection bound as the directory manager, to change entries in tests and demos."""
        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=timeout)
        return ldap3.Connection(server, ADMIN_DN, self.admin_password, auto_bind=True, receive_timeout=timeout, raise_exceptions=True)

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        conf = self.workdir / "slapd.conf"
        log = open(self.log_file, "ab")  # noqa: SIM115 - slapd writes to it for its whole life
        try:
            self.process = subprocess.Popen(
                [self.slapd, "-f", str(conf), "-h", f"ldap://{self.host}:{self.port}/", "-d", "stats"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )
        finally:
            log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SandboxError(f"slapd exited with {self.process.returncode}: {self.log_tail()}")
            # A new Server each time: ldap3 remembers a refused address as unavailable for 5 s.
            server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=0.5)
            try:
                conn = ldap3.Connection(server, SERVICE_DN, self.service_password, receive_timeout=1)
                if conn.bind():
                    conn.unbind()
                    return
            except ldap3.core.exceptions.LDAPException:
                pass
            time.sleep(0.1)
        raise SandboxError(f"slapd did not answer on {self.url} within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def __enter__(self) -> DirectoryHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _slapadd(slapd: str, conf: Path, ldif: Path) -> None:
    # `slapd -T add` is slapadd: Debian installs slapadd as a link to slapd.
    result = subprocess.run(
        [slapd, "-T", "add", "-f", str(conf), "-l", str(ldif)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise SandboxError(f"loading {ldif.name} failed: {result.stderr.strip()[-2000:]}")


def start_directory(
    workdir: str | os.PathLike[str],
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls: bool = False,
    staff_ldif: str | os.PathLike[str] = STAFF_LDIF,
    fresh: bool = False,
    timeout: float = 15.0,
    die_with_parent: bool = True,
) -> DirectoryHandle:
    """Create (first time) or reuse the directory in `workdir` and start slapd on host:port.

    `port=0` picks a free port (retrying if another process takes it meanwhile). Raises
    SandboxError when slapd is missing or does not answer within `timeout` seconds.
    """
    slapd = find_slapd()
    root = Path(workdir).resolve()
    state_file = root / "sandbox.json"
    if fresh:
        for name in ("data", "tls", "slapd.conf", "sandbox.json", "slapd.log"):
            target = root / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    if state_file.exists():
        state = json.loads(state_file.read_text())
        tls = state["tls"]
    else:
        state = {"admin_password": secrets.token_urlsafe(18), "service_password": secrets.token_urlsafe(18), "tls": tls}
        if tls:
            write_tls_files(root / "tls", host)
        (root / "data").mkdir(exist_ok=True)
        conf = root / "slapd.conf"
        conf.write_text(render_slapd_conf(root, admin_password=state["admin_password"], tls=tls))
        conf.chmod(0o600)
        base = root / "infrastructure.ldif"
        base.write_text(infrastructure_ldif(state["service_password"]), encoding="utf-8")
        _slapadd(slapd, conf, base)
        _slapadd(slapd, conf, Path(staff_ldif))
        base.unlink()

    attempts = 3 if port == 0 else 1
    for attempt in range(attempts):
        handle = DirectoryHandle(
            workdir=root,
            host=host,
            port=port or free_port(host),
            tls=tls,
            admin_password=state["admin_password"],
            service_password=state["service_password"],
            slapd=slapd,
            die_with_parent=die_with_parent,
        )
        try:
            handle.start(timeout)
        except SandboxError:
            if attempt + 1 == attempts:
                raise
            continue
        state_file.write_text(json.dumps({**state, "url": handle.url, "connector_config": handle.connector_config()}, indent=2))
        state_file.chmod(0o600)
        return handle
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="NIXA LDAP sandbox: a real OpenLDAP staff directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3890, help="0 picks a free port")
    parser.add_argument("--dir", required=True, help="working directory (config, data, log)")
    parser.add_argument("--tls", action="store_true", help="offer StartTLS with a throwaway CA (DIR/tls/ca.pem)")
    parser.add_argument("--fresh", action="store_true", help="discard earlier data in DIR and reload staff.ldif")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for slapd to answer")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        handle = start_directory(args.dir, args.port, host=args.host, tls=args.tls, fresh=args.fresh, timeout=args.timeout)
    except SandboxError as exc:
        print(f"ldap sandbox: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps({"url": handle.url, "connector_config": handle.connector_config()}, ensure_ascii=False), flush=True)
    try:
        while not stop.wait(0.5):
            if not handle.running:
                print(f"ldap sandbox: slapd exited: {handle.log_tail()}", file=sys.stderr)
                raise SystemExit(1)
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
