"""Analysis of a sweep from the files its runs wrote: tables, transition estimates, figures.

Nothing here loads a model: every number comes from ``runs/<name>/probes/*.json(l)``.
"""
