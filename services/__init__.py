"""The recovery services. `services.catalog.SERVICES` lists the deployed ones."""
