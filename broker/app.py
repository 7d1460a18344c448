"""Broker: configuration, startup, Tornado wiring and graceful drain."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Enum, Float, Int, Unicode, default
from traitlets.config import Application

from . import __version__
from .auth import Authenticator
from .capacity import raise_open_files_limit
from .executions import ExecutionLimits
from .files.limits import FileLimits
from .handlers import api
from .kernelspecs import KernelSpecs
from .logs import LOG_FORMAT, EventFormatter, route_module_loggers
from .mcp.tools import McpLimits
from .mcp.transport import McpService
from .metrics import Metrics
from .offered_kernelspecs import OfferedKernelSpecManager, default_refusal, local_kernels_default
from .options import StrictLoader, UsageError, fail
from .pools import KernelPools
from .provisioners.local import BrokerLocalProvisioner
from .registry import KernelRegistry
from .replicas import Replicas
from .routes import routes
from .sessions import SessionStore
from .shutdown import KernelShutdown
from .snapshots import SnapshotStore
from .startup import StartupError, bind, config_file, env_default, ssl_context, users
from .state_dir import StateDir, make_work_dir, remembered_token


class Broker(Application):
    """The Kernel Broker server."""

    name = "kernel-broker"
    version = __version__
    description = "Start Jupyter kernels for remote clients and bridge them to websockets."

    ip = Unicode("127.0.0.1", config=True, help="Interface to listen on (env BROKER_IP).")
    port = Int(8889, config=True, help="Port to listen on; 0 picks a free one (env BROKER_PORT).")
    token = Unicode(
        config=True,
        help="Shared token clients must send (env BROKER_TOKEN); generated and printed if unset.",
    )
    no_auth = Bool(
        config=True,
        help="Disable authentication, for trusted local use only (env BROKER_NO_AUTH=1).",
    )
    users_file = Unicode(
        config=True,
        help="JSON/YAML file mapping tokens to users (env BROKER_USERS_FILE); "
        "replaces the shared token.",
    )
    certfile = Unicode(config=True, help="TLS certificate: serve HTTPS (env BROKER_CERTFILE).")
    keyfile = Unicode(config=True, help="TLS private key (env BROKER_KEYFILE).")
    default_kernel_name = Unicode(
        "python3",
        config=True,
        help="Kernelspec used when a start request names none (env BROKER_DEFAULT_KERNEL).",
    )
    log_level = Enum(
        Application.log_level.values,
        default_value="INFO",
        config=True,
        help="Log level, by name or number: DEBUG, INFO, WARN, ERROR or CRITICAL.",
    )
    local_kernels = Bool(
        config=True,
        help="Offer kernelspecs whose kernels run as processes inside the broker "
        "(env BROKER_LOCAL_KERNELS=0|1). Default: on, except in a Kubernetes pod "
        "(KUBERNETES_SERVICE_HOST set), where such a kernel could use the broker's "
        "service-account token; there only pod kernelspecs are offered.",
    )
    max_body_bytes = Int(4 * 1024 * 1024, config=True, help="Largest REST request body.")
    max_message_bytes = Int(
        64 * 1024 * 1024, config=True, help="Largest websocket message a client may send."
    )
    legacy_max_frame_bytes = Int(
        10 * 1024 * 1024 - 64 * 1024,
        config=True,
        help="Largest frame sent to legacy-protocol clients (Jupyter Server's gateway client "
        "drops the connection above 10 MiB); bigger stream output is split.",
    )
    stream_chunk_bytes = Int(
        8 * 1024 * 1024,
        config=True,
        help="Stream output bigger than this reaches websockets as several stream messages "
        "(same text, in order), so clients start on the first part sooner.",
    )
    ws_ping_interval = Float(30.0, config=True, help="Seconds between websocket pings (0: off).")
    allow_origin = Unicode(
        "",
        config=True,
        help="Origin whose pages may use the broker from a browser besides its own (websockets, "
        "and REST through CORS), e.g. https://lab.example.org; '*' allows any origin "
        "(env BROKER_ALLOW_ORIGIN).",
    )
    metrics_require_auth = Bool(True, config=True, help="Require the token for /metrics.")
    shutdown_grace = Float(
        10.0, config=True, help="Seconds to wait for kernels to shut down on SIGTERM."
    )

    aliases = {
        "ip": "Broker.ip",
        "port": "Broker.port",
        "token": "Broker.token",
        "users-file": "Broker.users_file",
        "certfile": "Broker.certfile",
        "keyfile": "Broker.keyfile",
        "config": "Broker.config_file",
        "default-kernel": "Broker.default_kernel_name",
        "max-kernels": "KernelRegistry.max_kernels",
        "max-kernels-per-user": "KernelRegistry.max_kernels_per_user",
        "cull-idle-timeout": "KernelRegistry.cull_idle_timeout",
        "cull-interval": "KernelRegistry.cull_interval",
        "env-allowlist": "KernelRegistry.env_allowlist",
        "log-level": "Broker.log_level",
        "state-dir": "StateDir.directory",
        "pool-size": "KernelPools.default_pool_size",
        "snapshot-dir": "SnapshotStore.directory",
        "allow-origin": "Broker.allow_origin",
    }
    flags = {
        "no-auth": ({"Broker": {"no_auth": True}}, "Disable token authentication."),
        "cull-connected": (
            {"KernelRegistry": {"cull_connected": True}},
            "Also cull idle kernels that have connections.",
        ),
        "cull-busy": ({"KernelRegistry": {"cull_busy": True}}, "Also cull busy kernels."),
        "local-kernels": (
            {"Broker": {"local_kernels": True}},
            "Offer kernels that run inside the broker, also in a Kubernetes pod.",
        ),
        "no-local-kernels": (
            {"Broker": {"local_kernels": False}},
            "Offer only kernelspecs whose kernels run elsewhere (pods).",
        ),
        "no-state": (
            {"StateDir": {"directory": ""}},
            "Keep no kernel records: local kernels end with the broker (as --state-dir='').",
        ),
    }
    classes = [
        KernelRegistry,
        StateDir,
        KernelShutdown,
        ExecutionLimits,
        McpLimits,
        FileLimits,
        KernelPools,
        Replicas,
        SnapshotStore,
        BrokerLocalProvisioner,
        KernelSpecManager,
        OfferedKernelSpecManager,
    ]
    config_file = Unicode("", config=True, help="Python or JSON config file to load.")

    # The environment overrides the declared defaults (which --help shows).
    @default("ip")
    def _ip(self) -> str:
        return env_default(self, "ip", "BROKER_IP")

    @default("port")
    def _port(self) -> int:
        return env_default(self, "port", "BROKER_PORT")

    @default("token")
    def _token(self) -> str:
        return env_default(self, "token", "BROKER_TOKEN")

    @default("no_auth")
    def _no_auth(self) -> bool:
        return env_default(self, "no_auth", "BROKER_NO_AUTH")

    @default("users_file")
    def _users_file(self) -> str:
        return env_default(self, "users_file", "BROKER_USERS_FILE")

    @default("certfile")
    def _certfile(self) -> str:
        return env_default(self, "certfile", "BROKER_CERTFILE")

    @default("keyfile")
    def _keyfile(self) -> str:
        return env_default(self, "keyfile", "BROKER_KEYFILE")

    @default("allow_origin")
    def _allow_origin(self) -> str:
        return env_default(self, "allow_origin", "BROKER_ALLOW_ORIGIN")

    @default("default_kernel_name")
    def _default_kernel(self) -> str:
        return env_default(self, "default_kernel_name", "BROKER_DEFAULT_KERNEL")

    @default("local_kernels")
    def _local_kernels(self) -> bool:
        return local_kernels_default()

    _log_formatter_cls = EventFormatter

    @default("log_format")
    def _log_format(self) -> str:
        return LOG_FORMAT

    def get_default_logging_config(self) -> dict[str, Any]:
        return route_module_loggers(super().get_default_logging_config())

    def _create_loader(
        self, argv: list[str] | None, aliases: dict, flags: dict, classes: Any
    ) -> StrictLoader:
        """Unknown options are errors: traitlets would only warn and start anyway."""
        return StrictLoader(argv, aliases, flags, classes=classes, log=self.log)

    def initialize(self, argv: list[str] | None = None) -> None:
        self.parse_command_line(argv)
        if self.extra_args:
            raise UsageError(f"unexpected argument {self.extra_args[0]!r}")
        if self.config_file:
            config_file(self, self.config_file)
            self.parse_command_line(argv)  # the command line wins over the file
        # Local kernels get the broker's provisioner (resource limits, adoptable by pid).
        factory = self.config.KernelProvisionerFactory
        if "default_provisioner_name" not in factory:
            factory.default_provisioner_name = "broker-local-provisioner"
        self.started = time.time()
        self.metrics = Metrics()
        self.token_generated = False
        self.state = StateDir(self.port, parent=self)
        self.auth = self._make_auth()
        manager = OfferedKernelSpecManager(parent=self, local_kernels=self.local_kernels)
        refused = default_refusal(manager, self.default_kernel_name)
        if refused:
            raise StartupError(refused)
        self.specs = KernelSpecs(manager, self.default_kernel_name)
        self.execution_limits = ExecutionLimits(parent=self)
        self.mcp_limits = McpLimits(parent=self)
        self.file_limits = FileLimits(parent=self)

    def _make_auth(self) -> Authenticator:
        if self.no_auth:
            self.log.warning("authentication is DISABLED: anyone who reaches the port runs code")
            return Authenticator.disabled()
        if self.users_file:
            return users(self.users_file)
        if not self.token:
            self.token = remembered_token(self.state.directory)
            self.token_generated = True
        return Authenticator.shared_token(self.token)

    # --- wiring -----------------------------------------------------------------

    def make_web_app(self) -> web.Application:
        return web.Application(
            routes(),
            broker=self,
            default_handler_class=api.NotFoundHandler,
            websocket_max_message_size=self.max_message_bytes,
            websocket_ping_interval=self.ws_ping_interval or None,
            log_function=self._log_request,
        )

    def _log_request(self, handler: web.RequestHandler) -> None:
        """Access log at debug level; the query string is left out: it may hold the token.

        Errors are logged once, by the handler that raised them.
        """
        request = handler.request
        ms = 1000 * request.request_time()
        self.log.debug("%d %s %s %.1fms", handler.get_status(), request.method, request.path, ms)

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        """Current values for /metrics."""
        states = Counter(k.execution_state for k in self.registry.kernels.values())
        out = [
            ("broker_kernels", "Kernels by execution state.", {"state": s}, n)
            for s, n in sorted(states.items())
        ]
        out.append(("broker_kernels_total", "Kernels running.", {}, len(self.registry.kernels)))
        connections = sum(len(k.bridge.connections) for k in self.registry.kernels.values())
        out.append(("broker_websocket_connections", "Open websockets.", {}, connections))
        return out + self.registry.pools.gauges()

    # --- running ----------------------------------------------------------------

    async def serve(self) -> None:
        """Listen until SIGTERM or SIGINT, then drain."""
        raise_open_files_limit()
        ssl_ctx = ssl_context(self.certfile, self.keyfile)
        sockets = bind(self.port, self.ip)
        # after the port: a port in use is the likelier mistake, and its error the clearer
        state = self.state
        state.open()
        sole = self.auth.sole_user
        self.registry = KernelRegistry(
            self.specs,
            self.metrics,
            state.directory,
            pool_owner=sole.name if sole else "",
            parent=self,
        )
        if self.local_kernels:
            make_work_dir(self.registry.working_dir)
        self.sessions = SessionStore(self.registry)
        self.snapshots = SnapshotStore(state.snapshot_directory(), parent=self)
        server = HTTPServer(
            self.make_web_app(),
            ssl_options=ssl_ctx,
            max_body_size=self.max_body_bytes,
            xheaders=True,
        )
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        await self.registry.start_background()
        self.mcp = McpService(self)
        await self.mcp.start()
        self._announce(port, ssl_ctx is not None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("draining: no new kernels; closing websockets and kernels")
        await self.drain(server)

    def _announce(self, port: int, tls: bool) -> None:
        url = f"{'https' if tls else 'http'}://{self.ip}:{port}/"
        print(f"Kernel Broker {__version__} listening on {url}", flush=True)
        if self.token_generated:
            # Printed once on the terminal (not logged) so the operator can copy it.
            kept = f" (kept in {self.state.directory}/token)" if self.state.directory else ""
            print(f"Token: {self.token}{kept}", flush=True)
            print(f"Use:   {url}api/kernels?token={self.token}", flush=True)
        elif self.no_auth:
            print("Token: none (authentication disabled)", flush=True)
        else:
            print("Token: as configured", flush=True)

    async def drain(self, server: HTTPServer) -> None:
        self.registry.accepting = False
        server.stop()
        try:
            await asyncio.wait_for(self.registry.drain(), self.shutdown_grace)
        except TimeoutError:
            self.log.warning("kernels did not shut down within %.0f s", self.shutdown_grace)
        if self.registry.kernels and self.registry.store is not None:
            self.log.info(
                "kept %d kernels running for the next broker (records in %s); local ones "
                "are ended %.0f s from now unless a broker adopts them",
                len(self.registry.kernels),
                self.state.directory,
                self.state.orphan_timeout,
            )
        await self.mcp.stop()
        await server.close_all_connections()

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: list[str] | None = None) -> None:
    app = Broker.instance()
    try:
        app.initialize(argv if argv is not None else sys.argv[1:])
        app.start()
    except StartupError as e:
        print(f"kernel-broker serve: {e}", file=sys.stderr)
        sys.exit(1)
    except UsageError as e:
        fail("kernel-broker serve", str(e), "kernel-broker serve --help-all lists every option")
