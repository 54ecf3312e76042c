"""Configuration is checked when the connector opens, not at someone's sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import ConnectorContext
from connectors.ldap.config import LdapConfig, option_reference
from connectors.ldap.connector import LdapConnector
from idp.store.ephemeral import MemoryStore

BASE = {
    "url": "ldap://127.0.0.1:389",
    "bind_dn": "cn=nixa,ou=services,dc=gov,dc=vn",
    "bind_password": "x",
    "base_dn": "ou=people,ou=mof,dc=gov,dc=vn",
}


def open_connector(**overrides):
    return LdapConnector(ConnectorContext("mof", {**BASE, **overrides}, MemoryStore()))


def test_defaults():
    connector = open_connector()
    config = connector.config
    assert config.urls == ("ldap://127.0.0.1:389",)
    assert config.user_filter == "(uid={username})"
    assert config.groups_base == BASE["base_dn"]
    assert config.use_starttls is False
    assert config.attributes["name"] == ("displayName", "cn")
    assert connector.display_name_vi and connector.display_name_en
    assert [(f.name, f.kind) for f in connector.fields] == [("username", "text"), ("password", "password")]
    assert connector.fields[0].label_vi == "Tên đăng nhập" and connector.fields[1].label_en == "Password"


def test_attribute_mapping_overrides_merge_over_defaults():
    config = LdapConfig.from_mapping({**BASE, "attributes": {"phone_number": "mobile", "title": "", "department": ["ou"]}})
    assert config.attributes["phone_number"] == ("mobile",)
    assert "title" not in config.attributes
    assert config.attributes["department"] == ("ou",)
    assert config.attributes["email"] == ("mail",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": None}, "url"),
        ({"bind_dn": ""}, "bind_dn"),
        ({"base_dn": ""}, "base_dn"),
        ({"url": "http://127.0.0.1"}, "ldap://"),
        ({"user_filter": "(uid=admin)"}, "{username}"),
        ({"user_filter": "uid={username}"}, "parenthesised"),
        ({"user_filter": "(&(uid={username})"}, "invalid"),
        ({"group_filter": "(member=x)"}, "{dn}"),
        ({"timeout": 0}, "timeout"),
        ({"frobnicate": True}, "unknown"),
        ({"url": "ldap://ldap.mof.gov.vn"}, "plaintext"),
    ],
)
def test_invalid_configuration_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        open_connector(**overrides)


def test_plaintext_to_a_remote_host_needs_tls_or_an_explicit_opt_out():
    for allowed in (
        {"url": "ldaps://ldap.mof.gov.vn"},
        {"url": "ldap://ldap.mof.gov.vn", "use_starttls": True},
        {"url": "ldap://ldap.mof.gov.vn", "allow_insecure": True},
        {"url": "ldap://localhost:389"},
    ):
        open_connector(**allowed)


def test_option_reference_lists_every_key_and_the_readme_carries_it():
    reference = option_reference()
    readme = Path(__file__).resolve().parents[3] / "connectors" / "ldap" / "README.md"
    assert reference in readme.read_text(encoding="utf-8"), "regenerate the README's configuration reference"
    for key in ("url", "bind_dn", "bind_password", "base_dn", "user_filter", "group_base_dn", "group_filter",
                "timeout", "use_starttls", "attributes", "disabled_filter"):
        assert f"`{key}`" in reference
