"""Startup steps that fail for a reason the operator can fix, each failure one line saying how.

``kernel-broker serve`` prints a ``StartupError`` as one line and exits 1, where a
traceback would bury the cause (a port in use, a missing certificate) under twenty lines
that tell an operator nothing more.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import yaml
from tornado.netutil import bind_sockets
from traitlets import Bool, HasTraits, TraitError
from traitlets.config import Application
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from .auth import Authenticator
from .options import UsageError, check_config


class StartupError(Exception):
    """The broker cannot start; the message says why and what to do, in one line."""


def env_default(owner: HasTraits, name: str, variable: str) -> Any:
    """Trait ``name`` from environment ``variable``, else its declared default.

    The declared default is what ``--help`` shows, so help and behaviour agree.
    """
    trait = owner.traits()[name]
    raw = os.environ.get(variable)
    if raw is None:
        return trait.default_value
    if isinstance(trait, Bool):
        return truthy(raw)
    try:
        return trait.validate(owner, trait.from_string(raw))
    except (ValueError, TraitError) as e:
        raise StartupError(f"{variable}={raw!r} is not valid ({e}): fix or unset it") from None


def truthy(raw: str) -> bool:
    """A boolean environment value: 1, true, yes or on (any case) mean yes."""
    return raw.strip().lower() in ("1", "true", "yes", "on")


def bind(port: int, ip: str) -> list[socket.socket]:
    """The listening sockets, or a StartupError naming the setting to change."""
    try:
        return bind_sockets(port, ip)
    except OSError as e:
        where = f"{ip}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {ip} is already in use (another broker?): choose another "
                "with --port N or BROKER_PORT=N, or --port 0 for a free one"
            ) from None
        if e.errno == errno.EACCES:
            raise StartupError(
                f"no permission to listen on {where}: ports below 1024 need root; "
                "use --port N (or BROKER_PORT) above 1023"
            ) from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(e, socket.gaierror):
            raise StartupError(
                f"cannot listen on {ip!r}: no such address on this machine ({e.strerror}); "
                "use --ip (or BROKER_IP) 127.0.0.1, 0.0.0.0 or one of this machine's addresses"
            ) from None
        raise StartupError(f"cannot listen on {where}: {e.strerror or e}") from None


def ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext | None:
    """A server TLS context from the PEM files, None without a certificate."""
    if not certfile:
        if keyfile:
            raise StartupError("--keyfile (BROKER_KEYFILE) needs --certfile (BROKER_CERTFILE)")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    files = f"--certfile {certfile}" + (f" and --keyfile {keyfile}" if keyfile else "")
    try:
        ctx.load_cert_chain(certfile, keyfile or None)
    except OSError as e:
        reason = e.strerror if e.strerror else str(e)
        missing = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise StartupError(
            f"cannot load the TLS certificate from {files}: {reason}{missing}; give a PEM "
            "certificate and its private key (--keyfile when the key is in a separate file)"
        ) from None
    return ctx


def users(path: str) -> Authenticator:
    """The users file's authenticator, or a StartupError saying what is wrong with the file."""
    where = f"the users file {path} (--users-file, BROKER_USERS_FILE)"
    try:
        return Authenticator.from_users_file(path)
    except OSError as e:
        raise StartupError(f"cannot read {where}: {e.strerror or e}") from None
    except (ValueError, yaml.YAMLError, AttributeError, TypeError) as e:
        shape = '{"users": [{"name": ..., "token": ..., "admin": false}]}'
        raise StartupError(f"{where} is not valid: {_one_line(e)}; expected {shape}") from None


def config_file(app: Application, path: str) -> None:
    """Load a Python or JSON config file that must exist (traitlets skips missing ones)."""
    if not Path(path).is_file():
        raise StartupError(f"config file {path} not found (--config): give an existing file")
    # The loader of this one file: Application.load_config_file would also load NAME.py beside
    # NAME.json, and log a traceback and go on without the file when it fails.
    loader = JSONFileConfigLoader if path.endswith(".json") else PyFileConfigLoader
    directory, name = os.path.split(os.path.abspath(path))
    try:
        loaded = loader(name, path=directory, log=app.log).load_config()
    except Exception as e:  # the file's own code may raise anything: show it in one line
        raise StartupError(f"config file {path} failed to load: {_one_line(e)}") from None
    try:
        check_config(loaded, "c.{}")
    except UsageError as e:
        raise StartupError(f"config file {path}: {e}") from None
    app.update_config(loaded)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
