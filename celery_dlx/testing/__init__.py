"""Test support: a real worker in a subprocess (:mod:`.worker`), throwaway RabbitMQ nodes
(:mod:`.rabbitnode`) and the pytest plugin (:mod:`.pytest_plugin`).
"""

from __future__ import annotations

