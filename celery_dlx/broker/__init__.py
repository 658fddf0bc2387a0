"""Everything that touches RabbitMQ for a delay: the pure planner (:mod:`.plan`), the
topology (:mod:`.topology`), headers and the destination queue (:mod:`.headers`,
:mod:`.destination`), and the confirmed publisher (:mod:`.publish`).
"""

from __future__ import annotations

