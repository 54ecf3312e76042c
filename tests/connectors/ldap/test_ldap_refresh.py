"""refresh: is the person still in the directory and enabled? The directory is changed for real."""

from __future__ import annotations

import ldap3

from connectors.base import Assertion, Gone, NotAllowed, RefreshingConnector
from connectors.ldap.sandbox import AGENCY_BASE_DN

PEOPLE = f"ou=people,{AGENCY_BASE_DN}"
GROUPS = f"ou=groups,{AGENCY_BASE_DN}"
AN = f"uid=nguyenvanan,{PEOPLE}"
AN_LOGIN = {"username": "nguyenvanan", "password": "An@Demo2024"}


def test_refresh_of_an_active_account_returns_current_attributes_and_roles(directory, make_connector):
    connector = make_connector(directory)
    assert isinstance(connector, RefreshingConnector)
    signed_in = connector.login(AN_LOGIN)

    admin = directory.admin_connection()
    admin.modify(AN, {"title": [(ldap3.MODIFY_REPLACE, ["Phó Cục trưởng Cục Thuế"])]})
    admin.modify(f"cn=quan-tri,{GROUPS}", {"member": [(ldap3.MODIFY_ADD, [AN])]})

    refreshed = connector.refresh(signed_in.subject, signed_in.connector_data)
    assert isinstance(refreshed, Assertion)
    assert refreshed.subject == signed_in.subject
    assert refreshed.value("name") == "Nguyễn Văn An"
    assert refreshed.value("title") == "Phó Cục trưởng Cục Thuế"
    assert refreshed.value("roles") == ["can-bo-thue", "quan-tri"]
    assert refreshed.authenticated_at == signed_in.authenticated_at  # a refresh is not a new sign-in
    assert refreshed.amr == ("pwd",)


def test_refresh_follows_a_renamed_entry_by_its_entry_uuid(directory, make_connector):
    connector = make_connector(directory)
    signed_in = connector.login(AN_LOGIN)
    directory.admin_connection().modify_dn(AN, "uid=an.nguyenvan")
    refreshed = connector.refresh(signed_in.subject, signed_in.connector_data)
    assert isinstance(refreshed, Assertion)
    assert refreshed.subject == signed_in.subject
    assert refreshed.value("preferred_username") == "an.nguyenvan"


def test_account_disabled_after_login_is_gone(directory, make_connector):
    connector = make_connector(directory)
    signed_in = connector.login(AN_LOGIN)
    directory.admin_connection().modify(AN, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})

    gone = connector.refresh(signed_in.subject, signed_in.connector_data)
    assert isinstance(gone, Gone) and gone.reason == "disabled"
    try:
        connector.login(AN_LOGIN)
    except NotAllowed as refused:
        assert refused.code == "account_disabled"
    else:
        raise AssertionError("a disabled account signed in")

    # Unlocked by an administrator: valid again.
    directory.admin_connection().modify(AN, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
    assert isinstance(connector.refresh(signed_in.subject, signed_in.connector_data), Assertion)


def test_deleted_account_is_gone(directory, make_connector):
    connector = make_connector(directory)
    signed_in = connector.login(AN_LOGIN)
    admin = directory.admin_connection()
    admin.modify(f"cn=can-bo-thue,{GROUPS}", {"member": [(ldap3.MODIFY_DELETE, [AN])]})
    assert admin.delete(AN), admin.result

    gone = connector.refresh(signed_in.subject, signed_in.connector_data)
    assert isinstance(gone, Gone) and gone.reason == "deleted"


def test_refresh_by_dn_when_the_directory_has_no_stable_id(directory, make_connector):
    connector = make_connector(directory, id_attribute="")
    signed_in = connector.login(AN_LOGIN)
    assert signed_in.subject == AN
    assert isinstance(connector.refresh(signed_in.subject, signed_in.connector_data), Assertion)
    # A DN outside the configured base is never looked at, even if it exists.
    outside = connector.refresh(f"cn=nixa,ou=services,{directory.suffix}", {})
    assert isinstance(outside, Gone) and outside.reason == "deleted"
    directory.admin_connection().delete(AN)
    gone = connector.refresh(signed_in.subject, signed_in.connector_data)
    assert isinstance(gone, Gone) and gone.reason == "deleted"
