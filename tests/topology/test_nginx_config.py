"""The nginx server block docker/compose.yaml and the test topology share, as nginx reads it:
`nginx -t` on the rendering the topology uses, in both test runs (no workers needed)."""

from __future__ import annotations

import subprocess

from tests.topology.harness import TEMPLATE, Door, Nginx, make_server_tls, nginx_binary, render


def test_the_template_is_a_server_block_nginx_accepts(tmp_path):
    """Rendered as the test topology renders it, `nginx -t` accepts the configuration."""
    tls = make_server_tls(tmp_path / "tls")
    checked = Nginx.configure(tmp_path / "nginx", tls, {"nixa_pool": ["127.0.0.1:9"]}, [Door("pool", 9, "nixa_pool")])
    assert checked.returncode == 0, checked.stderr
    assert "ssl_verify_client optional_no_ca;" in (tmp_path / "nginx" / "door-pool.conf").read_text()


def test_nginx_refuses_a_broken_template_rendering(tmp_path):
    """The `nginx -t` check above can fail: a placeholder filled with nonsense is refused."""
    tls = make_server_tls(tmp_path / "tls")
    values = {"NGINX_LISTEN": "127.0.0.1:9", "NGINX_TLS_CERT": str(tls.cert), "NGINX_TLS_KEY": str(tls.key),
              "NGINX_UPSTREAM": "nixa_pool", "NGINX_PROXY_BIND": "not an address"}
    broken = render(TEMPLATE.read_text(encoding="utf-8"), values)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{ upstream nixa_pool {{ server 127.0.0.1:9; }}\n{broken}\n}}\n", encoding="utf-8")
    checked = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode != 0
