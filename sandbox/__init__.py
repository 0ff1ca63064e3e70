"""The local AWS sandbox: one endpoint serving moto plus the project's own emulators (DRS,
Resource Explorer), the estate file that describes a customer estate, and its seeder."""
