"""Output: where a window's rows are written — the folder sink (staging, atomic publish, manifest) and formats.

May import :mod:`genviral_provider.core.reading` (for run windows) and :mod:`genviral_provider.core.rows`;
never the API clients: rows arrive as an iterable, already read.
"""
