"""The processes of a scale-out deployment on loopback: NIXA workers (`nixa serve`, the
project's ASGI entry) and nginx (Debian's package, as a foreground process with its own
configuration, prefix and temporary paths), rendered from docker/nginx/nixa.conf.template, the
file docker/compose.yaml uses too.

nginx connects to the workers from 127.0.0.2 (`proxy_bind`), a loopback address of its own, so
the workers can tell it from a client that reaches them directly from 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "docker" / "nginx" / "nixa.conf.template"
PROXY_ADDR = "127.0.0.2"  # nginx → workers
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def _load_make_tls():  # noqa: ANN202
    """docker/make_tls.py, the throwaway TLS material of `docker compose up`, used here too."""
    spec = importlib.util.spec_from_file_location("nixa_docker_make_tls", REPO_ROOT / "docker" / "make_tls.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_make_tls = _load_make_tls()
ServerTLS = _make_tls.ServerTLS
make_server_tls = _make_tls.make_server_tls


def render(template: str, values: Mapping[str, str]) -> str:
    """What the nginx image's envsubst step does with the template: every ${NAME} replaced by
    its value; a name without a value is an error here (envsubst would leave it and nginx fail)."""
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if not found:
        raise RuntimeError("nginx not found (scripts/bootstrap.sh installs Debian's nginx)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---- processes -------------------------------------------------------------------------------


class Process:
    """A child process with its output in a log file, stopped by its own pid only."""

    def __init__(self, name: str, command: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=self._out, stderr=subprocess.STDOUT, env=dict(env) if env else None)

    def running(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: uvicorn finishes in-flight requests, nginx exits fast
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._out.close()


def wait_until(check, timeout: float, what: str, process: Process | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.tail()}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout} s" + (f":\n{process.tail()}" if process else ""))


def worker_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker: the caller's, less any NIXA_* it had, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIXA_")}
    env.update(settings)
    return env


class Worker(Process):
    """One NIXA worker process: `nixa serve` on a loopback port, configured by environment."""

    def __init__(self, name: str, settings: Mapping[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = dict(settings)
        command = [sys.executable, "-m", "admin.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(name, command, log, worker_env(settings))

    def wait_ready(self, timeout: float = 60) -> Worker:
        wait_until(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200, timeout, f"{self.name} /readyz", self)
        return self


@dataclass(frozen=True)
class Door:
    """One TLS listener of nginx in front of an upstream of workers."""

    name: str
    port: int
    upstream: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class Nginx(Process):
    """nginx in the foreground (`daemon off`), everything it writes under `directory`."""

    def __init__(self, directory: Path, tls: ServerTLS, upstreams: Mapping[str, list[str]], doors: list[Door]) -> None:
        self.directory = directory
        self.doors = {door.name: door for door in doors}
        checked = self.configure(directory, tls, upstreams, doors)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{checked.stderr}")
        super().__init__("nginx", self.command(directory), directory / "nginx.out")

    @staticmethod
    def command(directory: Path) -> list[str]:
        return [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(directory / "nginx.conf")]

    @classmethod
    def configure(cls, directory: Path, tls: ServerTLS, upstreams: Mapping[str, list[str]],
                  doors: list[Door]) -> subprocess.CompletedProcess:
        """Write nginx.conf (one rendering of the template per door) and check it with `nginx -t`."""
        directory.mkdir(parents=True, exist_ok=True)
        template = TEMPLATE.read_text(encoding="utf-8")
        includes = []
        for door in doors:
            conf = directory / f"door-{door.name}.conf"
            conf.write_text(render(template, {"NGINX_LISTEN": f"127.0.0.1:{door.port}", "NGINX_TLS_CERT": str(tls.cert),
                                              "NGINX_TLS_KEY": str(tls.key), "NGINX_UPSTREAM": door.upstream,
                                              "NGINX_PROXY_BIND": PROXY_ADDR}), encoding="utf-8")
            includes.append(f"    include {conf};")
        blocks = [f"    upstream {name} {{\n" + "".join(f"        server {s};\n" for s in servers) + "        keepalive 8;\n    }"
                  for name, servers in upstreams.items()]
        temp = "\n".join(f"    {kind}_temp_path {directory / (kind + '_temp')};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, the worker processes drop to nobody: the prefix must be theirs to traverse.
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
            "events { worker_connections 512; }\n"
            f"http {{\n    log_format nixa '$remote_addr $request_id $status \"$request\"';\n"
            f"    access_log {directory / 'access.log'} nixa;\n{temp}\n" + "\n".join(blocks) + "\n" + "\n".join(includes) + "\n}\n",
            encoding="utf-8")
        return subprocess.run([*cls.command(directory), "-t", "-q"], capture_output=True, text=True, timeout=30)

    def wait_ready(self, timeout: float = 20) -> Nginx:
        for door in self.doors.values():
            wait_until(lambda d=door: _accepts(d.port), timeout, f"nginx door {door.name}", self)
        return self


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS to nginx: its test CA trusted, and a client certificate when given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context
