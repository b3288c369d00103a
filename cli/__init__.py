"""cli floor of aichain-node (see DESIGN.md §1)."""
