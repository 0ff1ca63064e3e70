"""See README.md: not built yet."""
