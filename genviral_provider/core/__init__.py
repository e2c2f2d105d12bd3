"""The Airflow-free core of the provider, in rooms by role.

- :mod:`.api` — transport: connection settings, the API contract (paths, queries, the envelope), the retry
  policy, and the sync and async clients that send requests.
- :mod:`.reading` — which requests read a run's window completely: run windows, the window plan, the pager.
- :mod:`.freshness` — analytics targets, refreshes, and the state machines of the freshness gate.
- :mod:`.output` — where rows go: the folder sink (staging, publish, manifest) and its file formats.
- :mod:`.correlation` — the search for rows correlated to Genviral post ids; :mod:`.rows`, what a row is.

Imports flow one way: ``api`` ← ``reading`` ← ``output``; ``api`` ← ``freshness``; nothing here imports Airflow.
The hook, the operators, the sensors and the triggers are thin Airflow shells around these rooms.
"""
