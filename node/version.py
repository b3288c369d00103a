"""The node software's version, as node_status and web3_clientVersion report it and the P2P Hello carries it."""

VERSION = "0.1.0"
CLIENT_VERSION = f"aichain-node/v{VERSION}/python"
