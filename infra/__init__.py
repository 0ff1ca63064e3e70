"""The CDK (Python) app that deploys the DR orchestrator (see infra/README.md)."""
