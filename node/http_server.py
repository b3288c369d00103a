"""The node's HTTP port: JSON-RPC (`node.rpc`), artifacts (`node.artifacts.http`), `/metrics` and `/health`.

`set_up` prepares it without listening; `listen` binds the port (the last step of a start, so a
node answers only once every part runs); `close` stops listening, answers or cancels the
requests in progress, and ends the routes' threads.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from core.errors import ConfigError
from node.artifacts.access import ArtifactAccess
from node.artifacts.http import add_artifact_routes
from node.artifacts.http_downloads import InFlight
from node.artifacts.upload_body import UploadLimits
from node.config import NodeConfig
from node.http_log import server_logger
from node.metrics import CONTENT_TYPE, NodeMetrics
from node.rpc.admin import AdminGate, read_admin_token
from node.rpc.api import Served, build_registry
from node.rpc.http import add_rpc_routes
from node.rpc.jsonrpc import Dispatcher, RpcLimits
from node.rpc.websocket import WebSocketEndpoint


class HttpServer:
    def __init__(
        self, served: Served, config: NodeConfig, metrics: NodeMetrics, access: ArtifactAccess, in_flight: InFlight
    ) -> None:
        self.served = served
        self.config = config
        self.metrics = metrics
        rpc, a = config.rpc, config.artifacts
        app = web.Application(client_max_size=rpc.max_body_bytes)
        limits = RpcLimits(max_body_bytes=rpc.max_body_bytes, max_batch=rpc.max_batch)
        token = None if rpc.admin_token_file is None else read_admin_token(rpc.admin_token_file)  # ConfigError
        admin = AdminGate(from_loopback=rpc.admin_from_loopback, token=token)
        dispatcher = Dispatcher(build_registry(served), limits, on_error=self._count_error)
        add_rpc_routes(app, dispatcher, cors_origins=rpc.cors_origins, admin=admin)
        self.websocket = WebSocketEndpoint(dispatcher, served.heads, admin, rpc.cors_origins)
        app.router.add_get("/ws", self.websocket.handle)
        app.on_shutdown.append(self.websocket.close_all)
        uploads = UploadLimits(
            max_uploads=a.max_uploads,
            idle_timeout_s=a.upload_idle_timeout_s,
            min_bytes_s=a.upload_min_bytes_s,
            grace_s=a.upload_grace_s,
        )
        # A chunk found damaged while serving is fetched again from the peers holding the artifact.
        repair = None if served.exchange is None else served.exchange.repair
        self.upload_counts = add_artifact_routes(
            app, served.artifacts, in_flight, access, uploads, admin, repair
        )  # for /metrics
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=server_logger())

    def _count_error(self, code: int) -> None:
        self.metrics.rpc_errors.labels(str(code)).inc()

    async def set_up(self) -> None:
        await self._runner.setup()

    async def close(self) -> None:
        await self._runner.cleanup()

    async def listen(self) -> str:
        """Bind the RPC port; the URL it answers on (ConfigError, saying what to do, if the port is taken)."""
        rpc = self.config.rpc
        site = web.TCPSite(self._runner, rpc.addr, rpc.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for RPC on {rpc.addr}:{rpc.port}: {os_reason(exc)}; "
                "is another node running? choose another --rpc-port"
            ) from exc
        addresses = self._runner.addresses  # of its one site: the port bound, if `rpc.port` was 0
        host, port = addresses[0][:2] if addresses else (rpc.addr, rpc.port)
        return f"http://{host}:{port}"

    async def _metrics(self, request: web.Request) -> web.Response:
        mempool, metrics = self.served.mempool, self.metrics
        metrics.mempool_txs.set(len(mempool))
        metrics.mempool_bytes.set(mempool.size_bytes)
        metrics.evictions_kept.set(len(mempool.evictions))
        metrics.artifact_bytes.set(await asyncio.to_thread(self.served.artifacts.stored_bytes))
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "height": self.served.chain.head.height})


def os_reason(exc: OSError) -> str:
    """What the OS said, in its own words ("address already in use"), without the call that failed."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
