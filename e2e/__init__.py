"""End-to-end run of the provider in a production-shaped Airflow deployment (``make e2e``; see docs/e2e.md)."""
