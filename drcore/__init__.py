"""Code every service shares: settings, AWS clients, event publishing, observability, state."""
