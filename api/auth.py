"""API keys, tenants and roles.

TAGGER_API_KEYS is "key:tenant[:operator]", comma separated. A request sends its key as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are kept as SHA-256 digests and
looked up by the digest of what the client sent, so lookup time says nothing about the key.

Roles: every key is a tenant (a customer: its jobs, datasets and training jobs are its own,
invisible to other tenants); `:operator` also lets it run the service: activate model
versions (a change every tenant sees) and see every tenant's datasets and training jobs.
`:admin` is the deprecated name of `:operator`, still accepted.

With no keys configured the server is one open local tenant, "local" (an operator); the CLI
refuses to bind such a server to a non-loopback address unless told to, and the app only
answers loopback host names (api.main: DNS rebinding).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

LOCAL_TENANT = "local"
ROLES = {"operator": True, "admin": True}  # role name -> operator; "admin": deprecated alias


@dataclass(frozen=True)
class Tenant:
    name: str
    operator: bool = False  # may activate models and see every tenant's datasets/training
    open: bool = False  # the open local tenant of a server without keys (no quotas)


class KeyRing:
    def __init__(self, raw: str) -> None:
        self._tenants = parse_api_keys(raw)

    @property
    def open(self) -> bool:
        """No keys configured: every request is the local tenant."""
        return not self._tenants

    def tenant_for(self, key: str | None) -> Tenant | None:
        if self.open:
            return Tenant(LOCAL_TENANT, operator=True, open=True)
        if not key:
            return None
        return self._tenants.get(_digest(key))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request sent: `Authorization: Bearer <key>`, else `X-API-Key: <key>`."""
    scheme, _, token = (authorization or "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return key or x_api_key or None


def parse_api_keys(raw: str) -> dict[str, Tenant]:
    """Fails loudly (ValueError) on a malformed entry: a typo must not open the server."""
    tenants: dict[str, Tenant] = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"TAGGER_API_KEYS entry {position} is not key:tenant[:operator]")
        if len(parts) == 3 and parts[2] not in ROLES:
            raise ValueError(f"TAGGER_API_KEYS entry {position} is not key:tenant[:operator]"
                             " (the third field can only be 'operator', or 'admin', its old"
                             " name)")
        tenants[_digest(parts[0])] = Tenant(parts[1], operator=len(parts) == 3)
    return tenants
