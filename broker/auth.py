"""Who is calling: tokens to users, kernel ownership, and kernelspec authorization."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import BrokerError


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated caller.

    ``admin`` sees and manages every kernel; ``impersonate`` lets the caller start
    kernels on behalf of the user named in ``KERNEL_USERNAME`` (what a Jupyter Server
    fronting many users needs).
    """

    name: str
    admin: bool = False
    impersonate: bool = False

    def owns(self, owner: str) -> bool:
        return self.admin or owner == self.name


ANONYMOUS = User("anonymous", admin=True, impersonate=True)


class Authenticator:
    """Maps a presented token to a User, comparing in constant time."""

    def __init__(self, entries: list[tuple[str, User]], enabled: bool = True) -> None:
        self._entries = [(t.encode(), u) for t, u in entries]
        self.enabled = enabled

    @classmethod
    def shared_token(cls, token: str) -> Authenticator:
        """One token for everyone: its holder is trusted like a Jupyter Server is."""
        return cls([(token, User("default", admin=True, impersonate=True))])

    @classmethod
    def disabled(cls) -> Authenticator:
        return cls([], enabled=False)

    @classmethod
    def from_users_file(cls, path: str | Path) -> Authenticator:
        """Read ``{"users": [{"name", "token", "admin"?, "impersonate"?}]}`` (JSON or YAML)."""
        text = Path(path).read_text()
        doc = yaml.safe_load(text) if str(path).endswith((".yaml", ".yml")) else json.loads(text)
        entries = []
        for item in (doc or {}).get("users", []):
            if not item.get("token") or not item.get("name"):
                raise ValueError(f"{path}: every user needs a name and a token")
            user = User(str(item["name"]), bool(item.get("admin")), bool(item.get("impersonate")))
            entries.append((str(item["token"]), user))
        if not entries:
            raise ValueError(f"{path}: no users defined")
        return cls(entries)

    @property
    def sole_user(self) -> User | None:
        """The one user every request is made as (a shared token, no auth), else None."""
        if not self.enabled:
            return ANONYMOUS
        return self._entries[0][1] if len(self._entries) == 1 else None

    def authenticate(self, token: str | None) -> User | None:
        """The user holding ``token``, or None. Every entry is compared, in constant time."""
        if not self.enabled:
            return ANONYMOUS
        if not token:
            return None
        presented = token.encode()
        found = None
        for secret, user in self._entries:
            if hmac.compare_digest(presented, secret):
                found = user
        return found


def token_from(headers: Any, query_token: str | None) -> str | None:
    """The token from ``Authorization: token|Bearer X`` or the ``?token=`` query argument."""
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return query_token or None


def spec_user_lists(metadata: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(authorized, unauthorized) user names a kernelspec declares.

    Read from ``metadata.kernel_broker`` and from Enterprise Gateway's
    ``metadata.process_proxy.config`` so EG kernelspecs work unchanged.
    """
    authorized: set[str] = set()
    unauthorized: set[str] = set()
    eg = (metadata.get("process_proxy") or {}).get("config") or {}
    for source in (metadata.get("kernel_broker") or {}, eg):
        authorized |= user_names(source.get("authorized_users"), "authorized_users")
        unauthorized |= user_names(source.get("unauthorized_users"), "unauthorized_users")
    return authorized, unauthorized


def user_names(value: Any, field: str) -> set[str]:
    """User names from a list or Enterprise Gateway's comma-separated string ("bob, alice").

    Raises ValueError for any other shape: a list the broker cannot read must not be
    mistaken for an empty one, which would let everybody in.
    """
    if value is None:
        return set()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f"{field} must be a list of user names or a comma-separated string, not {value!r}"
        )
    return {name.strip() for name in value if name.strip()}


def may_use_spec(metadata: dict[str, Any], username: str) -> bool:
    """Whether the kernelspec's user lists let ``username`` use it.

    Raises ValueError when the lists cannot be read.
    """
    authorized, unauthorized = spec_user_lists(metadata)
    return username not in unauthorized and (not authorized or username in authorized)


def authorize_spec(spec_name: str, metadata: dict[str, Any], username: str) -> None:
    """Raise 403 when the kernelspec's user lists exclude ``username``, 500 when unreadable."""
    try:
        allowed = may_use_spec(metadata, username)
    except ValueError as error:
        raise BrokerError(
            500, f"Kernelspec {spec_name!r} is misconfigured: {error}; fix its kernel.json."
        ) from None
    if not allowed:
        raise BrokerError(
            403,
            f"User {username!r} is not authorized to start kernels of spec {spec_name!r}; "
            "ask an operator to add you to its authorized_users.",
        )
