"""REST handlers for kernel state snapshots: take, list, get, delete, restore."""

from __future__ import annotations

from ..errors import BrokerError
from ..snapshots import SnapshotStore
from .base import BaseHandler, field, only_fields


class SnapshotHandlerBase(BaseHandler):
    @property
    def store(self) -> SnapshotStore:
        return self.broker.snapshots


class KernelSnapshotsHandler(SnapshotHandlerBase):
    async def post(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        meta = await self.store.take(kernel)
        self.set_header("Location", f"/api/snapshots/{meta['id']}")
        self.write_json(meta, status=201)


class KernelRestoreHandler(SnapshotHandlerBase):
    async def post(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        snapshot_id = field(only_fields(self.json_body(), ("snapshot",)), "snapshot", str)
        if snapshot_id is None:
            raise BrokerError(400, "Field 'snapshot' (a snapshot id) is required.")
        self.write_json(await self.store.restore(snapshot_id, kernel, self.user))


class SnapshotsHandler(SnapshotHandlerBase):
    def get(self) -> None:
        self.write_json(self.store.list(self.user))


class SnapshotHandler(SnapshotHandlerBase):
    def get(self, snapshot_id: str) -> None:
        self.write_json(self.store.get(snapshot_id, self.user))

    def delete(self, snapshot_id: str) -> None:
        self.store.delete(snapshot_id, self.user)
        self.set_status(204)
        self.finish()
