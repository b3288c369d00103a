"""The consensus floor of aichain-node (docs/architecture.md: the floors and what each holds)."""
