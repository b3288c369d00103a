"""Tests of the SDK (`aichain_node`) that need no node."""
