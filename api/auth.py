"""API keys and tenants.

TAGGER_API_KEYS is "key:tenant[:admin]", comma separated. A request sends its key as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are kept as SHA-256 digests and
looked up by the digest of what the client sent, so lookup time says nothing about the key.
With no keys configured the server is one open local tenant, "local" (admin); the CLI refuses
to bind such a server to a non-loopback address unless told to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

LOCAL_TENANT = "local"


@dataclass(frozen=True)
class Tenant:
    name: str
    admin: bool = False  # may use the operator routes (training, datasets, activation)


class KeyRing:
    def __init__(self, raw: str) -> None:
        self._tenants = parse_api_keys(raw)

    @property
    def open(self) -> bool:
        """No keys configured: every request is the local tenant."""
        return not self._tenants

    def tenant_for(self, key: str | None) -> Tenant | None:
        if self.open:
            return Tenant(LOCAL_TENANT, admin=True)
        if not key:
            return None
        return self._tenants.get(_digest(key))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(raw: str) -> dict[str, Tenant]:
    """Fails loudly (ValueError) on a malformed entry: a typo must not open the server."""
    tenants: dict[str, Tenant] = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"TAGGER_API_KEYS entry {position} is not key:tenant[:admin]")
        if len(parts) == 3 and parts[2] != "admin":
            raise ValueError(f"TAGGER_API_KEYS entry {position} is not key:tenant[:admin]"
                             " (the third field can only be 'admin')")
        tenants[_digest(parts[0])] = Tenant(parts[1], admin=len(parts) == 3)
    return tenants
