"""REST handlers for /api/kernels and /api/kernelspecs."""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from ..errors import BrokerError
from .base import BaseHandler, field


class KernelsHandler(BaseHandler):
    def get(self) -> None:
        self.write_json(self.broker.registry.models(self.user))

    async def post(self) -> None:
        body = self.json_body(required=False)
        name = field(body, "name", str)
        env = body.get("env")
        kernel = await self.broker.registry.start(name, env, self.user)
        self.set_header("Location", f"/api/kernels/{quote(kernel.id)}")
        self.write_json(kernel.model(), status=201)


class KernelHandler(BaseHandler):
    async def get(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        self.write_json(kernel.model())

    async def delete(self, kernel_id: str) -> None:
        registry = self.broker.registry
        await registry.shutdown(await registry.find(kernel_id, self.user))
        self.set_status(204)
        self.finish()


class KernelActionHandler(BaseHandler):
    async def post(self, kernel_id: str, action: str) -> None:
        registry = self.broker.registry
        kernel = await registry.find(kernel_id, self.user)
        if action == "interrupt":
            await registry.interrupt(kernel)
            self.set_status(204)
            self.finish()
        else:
            await registry.restart(kernel)
            self.write_json(kernel.model())


class KernelSpecsHandler(BaseHandler):
    def get(self) -> None:
        # admins see every spec, or those ?user= may use; others see what they may use
        name = self.get_argument("user", None) if self.user.admin else self.user.name
        self.write_json(self.broker.specs.list_models(name))


def check_visible(handler: BaseHandler, name: str) -> None:
    """404, as for a spec that does not exist, when the caller may not use it.

    The list leaves such specs out; fetching one by name must not reveal it either.
    """
    user = handler.user
    if not user.admin and not handler.broker.specs.allowed(name, user.name):
        raise BrokerError(404, f"No kernelspec {name!r}; list them with GET /api/kernelspecs.")


class KernelSpecHandler(BaseHandler):
    def get(self, name: str) -> None:
        check_visible(self, name)
        self.write_json(self.broker.specs.model(name))


class KernelSpecResourceHandler(BaseHandler):
    def get(self, name: str, filename: str) -> None:
        check_visible(self, name)
        path = self.broker.specs.resource_path(name, filename)
        self.set_header("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream")
        with open(path, "rb") as f:
            self.finish(f.read())
