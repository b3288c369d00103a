"""JSON-RPC 2.0 interface of aichain-node: the protocol (jsonrpc) and its transports (http)."""
