"""Turns the orchestration's event stream into CloudWatch metrics (see README.md)."""
