"""The Airflow-free core: the API contract, window planning, retry policy and a synchronous client.

The hook, the operator, the sensor and the trigger are thin Airflow shells around these modules.
"""
