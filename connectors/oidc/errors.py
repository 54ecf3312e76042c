"""The one error kind of our own: the upstream's answer (or the browser's callback) fails a check.

`code` says which check, for the audit event and the page:
state_mismatch, issuer_mismatch, callback_mismatch, saved_state_invalid, missing_code,
upstream_code_rejected, id_token_invalid, nonce_mismatch, userinfo_invalid, upstream_error.
The person can only start again; nothing here is their fault.
"""

from __future__ import annotations

from connectors.base import ConnectorError


class UpstreamResponseRejected(ConnectorError):
    code = "upstream_response_rejected"
