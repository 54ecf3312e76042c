"""Signing in against a real slapd: success, the ways it must fail, and the attacks it must stop."""

from __future__ import annotations

import time
import unicodedata

import ldap3
import pytest

from connectors.base import InvalidCredentials, LevelOfAssurance, NotAllowed, PasswordConnector, UpstreamUnavailable
from connectors.ldap.sandbox import AGENCY_BASE_DN

PEOPLE = f"ou=people,{AGENCY_BASE_DN}"


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def entry_uuid(directory, dn: str) -> str:
    admin = directory.admin_connection()
    admin.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["entryUUID"])
    value = admin.response[0]["raw_attributes"]["entryUUID"][0].decode()
    admin.unbind()
    return value


def test_login_yields_assertion_with_roles_and_vietnamese_name(directory, make_connector):
    connector = make_connector(directory)
    assert isinstance(connector, PasswordConnector)
    assert [f.name for f in connector.fields] == ["username", "password"]

    assertion = connector.login({"username": "tranthibinh", "password": "Binh@Demo2024"})

    assert assertion.connector_id == "mof"
    assert assertion.subject == entry_uuid(directory, person_dn("tranthibinh"))
    assert assertion.loa is LevelOfAssurance.LOW
    assert assertion.amr == ("pwd",)
    name = assertion.value("name")
    assert name == "Trần Thị Bình" and unicodedata.is_normalized("NFC", name)
    assert assertion.value("email") == "tranthibinh@mof.gov.vn"
    assert assertion.value("phone_number") == "+84 24 3971 2002"
    assert assertion.value("preferred_username") == "tranthibinh"
    assert assertion.value("employee_number") == "MOF-000102"
    assert assertion.value("title") == "Trưởng phòng Công nghệ thông tin"
    assert assertion.value("roles") == ["can-bo-thue", "quan-tri"]
    assert {a.source for a in assertion.attributes.values()} == {"ldap:mof"}
    assert assertion.connector_data["dn"] == person_dn("tranthibinh")


def test_roles_from_group_search_equal_roles_from_member_of(directory, make_connector):
    by_member_of = make_connector(directory)
    by_search = make_connector(directory, member_of_attribute="")
    for uid, password, roles in [
        ("levancuong", "Cuong@Demo2024", ["can-bo-thue", "ke-toan"]),
        ("dangthuhuong", "Huong@Demo2024", ["quan-tri"]),
        ("hoangvanem", "Em@Demo2024", []),
    ]:
        form = {"username": uid, "password": password}
        assert by_member_of.login(form).value("roles") == roles
        assert by_search.login(form).value("roles") == roles


def test_wrong_password_and_unknown_user_fail_the_same_way(directory, make_connector):
    connector = make_connector(directory)
    with pytest.raises(InvalidCredentials) as wrong:
        connector.login({"username": "nguyenvanan", "password": "Binh@Demo2024"})
    with pytest.raises(InvalidCredentials) as unknown:
        connector.login({"username": "khongtontai", "password": "An@Demo2024"})
    assert str(wrong.value) == str(unknown.value)
    assert wrong.value.code == unknown.value.code == "invalid_credentials"


@pytest.mark.parametrize("password", ["\x00", "a\u0007b", " ", "\u200b", "x" * 2000])
def test_odd_passwords_are_just_wrong(directory, make_connector, password):
    with pytest.raises(InvalidCredentials):
        make_connector(directory).login({"username": "nguyenvanan", "password": password})


def _binds_logged(directory, dn: str) -> int:
    return directory.log_file.read_text(errors="replace").count(f'BIND dn="{dn}"')


def _wait_for_log(directory, marker: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in directory.log_file.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{marker!r} never reached slapd's log"
        time.sleep(0.05)


def test_empty_password_is_refused_before_any_bind(directory, make_connector):
    """RFC 4513 §5.1.2: (dn, "") is an unauthenticated bind; it must never reach the directory."""
    connector = make_connector(directory)
    binds_before = _binds_logged(directory, person_dn("nguyenvanan"))
    for form in ({"username": "nguyenvanan", "password": ""}, {"username": "nguyenvanan"}, {"username": "", "password": "x"}):
        with pytest.raises(InvalidCredentials):
            connector.login(form)
    # A search that surely reaches the log after anything the attempts above could have sent.
    connector.login({"username": "hoangvanem", "password": "Em@Demo2024"})
    _wait_for_log(directory, f'BIND dn="{person_dn("hoangvanem")}"')
    assert _binds_logged(directory, person_dn("nguyenvanan")) == binds_before


@pytest.mark.parametrize(
    "username",
    [
        "*",
        "nguyenvana*",  # unescaped, (uid=nguyenvana*) would find exactly An and bind as him
        "*)(uid=*",
        "nguyenvanan)(|(uid=*",
        "*)(|(objectClass=*",
        "nguyenvanan\\29",
        "nguyenvanan\x00",
        "(uid=nguyenvanan)",
    ],
)
def test_ldap_injection_in_username_never_selects_an_account(directory, make_connector, username):
    connector = make_connector(directory)
    with pytest.raises(InvalidCredentials):
        connector.login({"username": username, "password": "An@Demo2024"})


def test_filter_metacharacters_are_matched_literally(directory, make_connector):
    """Escaping keeps a value a value: a real uid with ( ) * \\ still signs in, nobody else does."""
    admin = directory.admin_connection()
    uid = "le.(thu)*\\nghiem"
    admin.add(
        f"employeeNumber=MOF-000199,{PEOPLE}",
        ["inetOrgPerson"],
        {"uid": uid, "cn": "Lê Thử Nghiệm", "sn": "Lê", "employeeNumber": "MOF-000199", "userPassword": "Th@Nghiem-1"},
    )
    connector = make_connector(directory)
    assert connector.login({"username": uid, "password": "Th@Nghiem-1"}).value("name") == "Lê Thử Nghiệm"
    with pytest.raises(InvalidCredentials):
        connector.login({"username": "le.(thu)*", "password": "Th@Nghiem-1"})


def test_custom_user_filter_with_alternatives_is_escaped_too(directory, make_connector):
    connector = make_connector(
        directory, user_filter="(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))"
    )
    assert connector.login({"username": "nguyenvanan@mof.gov.vn", "password": "An@Demo2024"}).value(
        "preferred_username"
    ) == "nguyenvanan"
    with pytest.raises(InvalidCredentials):
        connector.login({"username": "nguyenvana*", "password": "An@Demo2024"})


def test_disabled_account_is_refused_and_the_directory_enforces_it(directory, make_connector):
    connector = make_connector(directory)
    with pytest.raises(NotAllowed) as refused:
        connector.login({"username": "phamthidung", "password": "Dung@Demo2024"})
    assert refused.value.code == "account_disabled"
    # The lock is the directory's own (ppolicy): a direct bind with the right password fails too.
    server = ldap3.Server(directory.url, get_info=ldap3.NONE, connect_timeout=5)
    assert not ldap3.Connection(server, person_dn("phamthidung"), "Dung@Demo2024", receive_timeout=5).bind()


def test_password_reset_by_an_administrator_must_be_changed_first(directory, make_connector):
    admin = directory.admin_connection()
    admin.modify(person_dn("nguyenvanan"), {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})
    with pytest.raises(NotAllowed) as refused:
        make_connector(directory).login({"username": "nguyenvanan", "password": "An@Demo2024"})
    assert refused.value.code == "password_change_required"


def test_starttls_with_the_directory_ca(tls_directory, make_connector):
    connector = make_connector(tls_directory)
    assert tls_directory.connector_config()["use_starttls"] is True
    assert connector.login({"username": "nguyenvanan", "password": "An@Demo2024"}).value("name") == "Nguyễn Văn An"
    log = tls_directory.log_file.read_text(errors="replace")
    assert "STARTTLS" in log and "tls_ssf=" in log


def test_starttls_with_an_untrusted_certificate_never_falls_back_to_plaintext(tls_directory, make_connector, tmp_path):
    other_ca = tmp_path / "other"
    from connectors.sandbox_tls import write_tls_files

    write_tls_files(other_ca, "127.0.0.1")
    connector = make_connector(tls_directory, ca_file=str(other_ca / "ca.pem"), retries=0)
    with pytest.raises(UpstreamUnavailable):
        connector.login({"username": "nguyenvanan", "password": "An@Demo2024"})
    assert 'BIND dn="uid=nguyenvanan' not in tls_directory.log_file.read_text(errors="replace")


@pytest.mark.parametrize(
    "username",
    [" nguyenvanan", "NguyenVanAn\t", "NGUYENVANAN", "\u3000nguyenvanan", "ｎｇｕｙｅｎｖａｎａｎ"],
    ids=["leading-space", "mixed-case-tab", "upper", "ideographic-space", "full-width"],
)
def test_username_variants_are_one_canonical_account(directory, make_connector, username):
    # The canonical spelling is both what is looked up and what the flow's throttle counts.
    from connectors.base import canonical_username

    assert canonical_username(username) == "nguyenvanan"
    assertion = make_connector(directory).login({"username": username, "password": "An@Demo2024"})
    assert assertion.connector_data["dn"] == person_dn("nguyenvanan")


@pytest.mark.parametrize("username", ["nguyen\u200bvanan", "nguyenvanan\u202e", "x" * 129, " \t "])
def test_invisible_characters_and_overlong_usernames_are_refused(directory, make_connector, username):
    with pytest.raises(InvalidCredentials):
        make_connector(directory).login({"username": username, "password": "An@Demo2024"})
