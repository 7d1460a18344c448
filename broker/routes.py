"""Every endpoint of the broker and the handler that serves it."""

from __future__ import annotations

from .handlers import api, channels, executions, files, kernels, sessions, snapshots
from .mcp.transport import McpHandler

_ID = r"(?P<kernel_id>[^/]+)"


def routes() -> list[tuple[str, type]]:
    """Every endpoint; the OpenAPI document in spec.yaml describes each of them."""
    return [
        (r"/api/?", api.ApiHandler),
        (r"/api/status", api.StatusHandler),
        (r"/api/spec\.yaml", api.SpecHandler),
        (r"/healthz", api.HealthHandler),
        (r"/readyz", api.ReadyHandler),
        (r"/metrics", api.MetricsHandler),
        (r"/api/kernelspecs/?", kernels.KernelSpecsHandler),
        (r"/api/kernelspecs/(?P<name>[^/]+)/?", kernels.KernelSpecHandler),
        (r"/kernelspecs/(?P<name>[^/]+)/(?P<filename>[^/]+)", kernels.KernelSpecResourceHandler),
        (r"/api/kernels/?", kernels.KernelsHandler),
        (rf"/api/kernels/{_ID}/?", kernels.KernelHandler),
        (rf"/api/kernels/{_ID}/(?P<action>interrupt|restart)/?", kernels.KernelActionHandler),
        (rf"/api/kernels/{_ID}/channels", channels.ChannelsHandler),
        (rf"/api/kernels/{_ID}/execute", executions.ExecuteHandler),
        (rf"/api/kernels/{_ID}/executions/?", executions.ExecutionsHandler),
        (rf"/api/kernels/{_ID}/executions/(?P<exec_id>[^/]+)", executions.ExecutionHandler),
        (rf"/api/kernels/{_ID}/files/?", files.FilesHandler),
        (rf"/api/kernels/{_ID}/files/(?P<path>.+)", files.FileHandler),
        (rf"/api/kernels/{_ID}/snapshots/?", snapshots.KernelSnapshotsHandler),
        (rf"/api/kernels/{_ID}/restore/?", snapshots.KernelRestoreHandler),
        (r"/api/snapshots/?", snapshots.SnapshotsHandler),
        (r"/api/snapshots/(?P<snapshot_id>[^/]+)/?", snapshots.SnapshotHandler),
        (r"/api/sessions/?", sessions.SessionsHandler),
        (r"/api/sessions/(?P<session_id>[^/]+)/?", sessions.SessionHandler),
        (r"/mcp/?", McpHandler),
    ]
