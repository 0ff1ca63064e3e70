"""Readiness report: DR posture per customer + environment, without starting anything."""
