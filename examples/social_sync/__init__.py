"""A social-sync app against a local, flaky social-API simulator: ``python -m examples.social_sync``.

Modules: :mod:`.roster` (the accounts, seeded), :mod:`.wire` and :mod:`.simulator` (the APIs,
server side, and how they fail), :mod:`.clients` (the APIs, client side), :mod:`.app` (the
Celery app, as a user of celery_dlx writes it), :mod:`.deployment` (the run's workers and
broker entities), :mod:`.progress` and :mod:`.chart` (what the run shows), :mod:`.report`
(the exactly-once check and the summary), :mod:`.run` (the command).
"""
