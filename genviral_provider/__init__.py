"""Apache Airflow provider for the Genviral Partner API's post analytics."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow: its package, hooks, operators and the ``genviral`` connection form.

    Import-light on purpose: Airflow calls it during provider discovery, before any DAG is parsed.
    """
    return {
        "package-name": "airflow-provider-genviral",
        "name": "Genviral",
        "description": "Genviral Partner API post analytics for Apache Airflow: hook, operator, sensor, trigger.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Genviral",
                "external-doc-url": "https://docs.genviral.io",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Genviral", "python-modules": ["genviral_provider.hooks.genviral"]}],
        "operators": [
            {
                "integration-name": "Genviral",
                "python-modules": [
                    "genviral_provider.operators.genviral",
                    "genviral_provider.operators.refresh",
                    "genviral_provider.operators.checkpoints",
                ],
            }
        ],
        "sensors": [{"integration-name": "Genviral", "python-modules": ["genviral_provider.sensors.genviral"]}],
        "triggers": [{"integration-name": "Genviral", "python-modules": ["genviral_provider.triggers.genviral"]}],
        "connection-types": [
            {
                "connection-type": "genviral",
                "hook-class-name": "genviral_provider.hooks.genviral.GenviralHook",
                "hook-name": "Genviral",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"password": "API key", "host": "Base URL"},
                    "placeholders": {
                        "password": "gva_live_x1y2z3.abcd1234",
                        "host": "https://www.genviral.io",
                    },
                },
                "conn-fields": _connection_fields(),
            }
        ],
    }


def _connection_fields() -> dict[str, Any]:
    return {
        "timeout": {
            "label": "Request timeout (seconds)",
            "description": "Seconds to wait for a connection and for each read of a response.",
            "schema": {"type": ["number", "null"], "default": 30, "minimum": 1},
        },
        "max_retries": {
            "label": "Max retries",
            "description": "Retries of one request after 429, 5xx, timeouts and broken responses (0 disables).",
            "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
        },
        "max_retry_wait": {
            "label": "Max retry wait (seconds)",
            "description": "The most seconds one request may spend waiting between its attempts.",
            "schema": {"type": ["number", "null"], "default": 120, "minimum": 1},
        },
        "max_concurrency": {
            "label": "Max concurrency",
            "description": "The most requests in flight while reading a window; lowered on 429, then recovered.",
            "schema": {"type": ["integer", "null"], "default": 8, "minimum": 1, "maximum": 32},
        },
        "max_body_bytes": {
            "label": "Max response size (bytes)",
            "description": "The largest response body read; a larger one fails the request, naming it.",
            "schema": {"type": ["integer", "null"], "default": 8388608, "minimum": 1, "maximum": 1073741824},
        },
    }
