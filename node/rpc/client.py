"""A small synchronous JSON-RPC client (standard library only), used by the CLI and tests."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

from core.transaction import Transaction


class RpcCallError(Exception):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class NodeUnreachable(Exception):
    """No node answered at the URL."""


class RpcClient:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read())
            except ValueError:
                raise NodeUnreachable(f"{self.url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeUnreachable(
                f"no node answers at {self.url} ({reason}); start one with `aichain-node start --dev` or pass --rpc URL"
            ) from exc
        if "error" in answer:
            error = answer["error"]
            raise RpcCallError(error.get("code", 0), error.get("message", ""), error.get("data"))
        return answer.get("result")

    def send(self, tx: Transaction) -> str:
        return self.call("tx_send", "0x" + tx.encoded.hex())["hash"]
