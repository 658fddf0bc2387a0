"""The accounts the demo syncs: who they are, how many followers each has, which tokens are dead.

Pure and seeded, so the simulator (which serves the followers) and the demo's final check
(which knows what must have arrived) derive the same roster from the same seed, and follower
ids are a function of the account, so the expected set is known without storing it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

NETWORKS = ("facebook", "twitter", "linkedin")


@dataclass(frozen=True)
class Account:
    """One account to sync.

    ``dead``: its token was revoked, so the API refuses it and the demo expects it parked, not
    synced.  ``endless_tail``: LinkedIn's off-by-one, past the end every page holds the last
    follower again, for ever.  Follower ``i`` has the id ``first_follower + i``.
    """

    id: str
    network: str
    followers: int
    token: str
    first_follower: int
    dead: bool = False
    endless_tail: bool = False

    def follower_ids(self, start: int = 0, stop: int | None = None) -> range:
        """Ids of followers ``start`` … ``stop - 1`` (clipped to the account's followers)."""
        end = self.followers if stop is None else min(stop, self.followers)
        start = min(max(start, 0), end)
        return range(self.first_follower + start, self.first_follower + end)


@dataclass(frozen=True)
class Shape:
    """How big a roster is: accounts per network, the whales' sizes (one per entry), the dead
    tokens per network, the usual size range, and from which size an account is a whale."""

    accounts: dict[str, int]
    whales: dict[str, tuple[int, int]]
    dead: dict[str, int]
    sizes: tuple[int, int]
    whale_threshold: int
    #: The first follower id of each account is a multiple of this, so ids never overlap.
    id_stride: int = 10_000_000


#: About 40 accounts over three networks, three whales of 100 000-150 000 followers, three dead tokens.
FULL = Shape(
    accounts={"facebook": 14, "twitter": 13, "linkedin": 13},
    whales={"facebook": (100_000, 150_000), "twitter": (100_000, 150_000), "linkedin": (100_000, 150_000)},
    dead={"facebook": 2, "linkedin": 1},
    sizes=(200, 20_000),
    whale_threshold=100_000,
)

#: Nine accounts for CI: one small whale (routed as a whale by a lower threshold), one dead token.
SHORT = Shape(
    accounts={"facebook": 3, "twitter": 3, "linkedin": 3},
    whales={"facebook": (25_000, 25_000)},
    dead={"facebook": 1},
    sizes=(500, 8_000),
    whale_threshold=20_000,
)


def build(seed: int, shape: Shape) -> list[Account]:
    """The roster for ``seed``: per network its whales first, then its dead tokens, then the rest
    (log-uniform sizes); LinkedIn accounts alternate between well-behaved and endless pagination.
    The order is shuffled, as sign-ups would be."""
    rng = random.Random(seed)
    accounts: list[Account] = []
    for network in NETWORKS:
        whale_sizes = [shape.whales[network]] if network in shape.whales else []
        for index in range(shape.accounts.get(network, 0)):
            number = len(accounts)
            if index < len(whale_sizes):
                followers = rng.randint(*whale_sizes[index])
            else:
                low, high = shape.sizes
                followers = round(math.exp(rng.uniform(math.log(low), math.log(high))))
            dead = len(whale_sizes) <= index < len(whale_sizes) + shape.dead.get(network, 0)
            accounts.append(
                Account(
                    id=f"{network}-{index:02d}",
                    network=network,
                    followers=followers,
                    token=f"{network[:2]}-{rng.getrandbits(96):024x}",
                    first_follower=(number + 1) * shape.id_stride,
                    dead=dead,
                    endless_tail=network == "linkedin" and index % 2 == 0,
                )
            )
    rng.shuffle(accounts)
    return accounts
