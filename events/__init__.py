"""The event contract shared by every service: see `events.schemas`."""
