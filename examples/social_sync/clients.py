"""The three follower APIs as the app sees them: what to ask, how to read it, how to page.

Each network pages differently, so each uses the celery_dlx pagination strategy that fits:

- Facebook gives a follower count and takes ``offset``/``limit``: every page is known up front
  (:func:`~celery_dlx.pagination.tasks.offset_pages`, all pages at once);
- Twitter pages with cursors: each page launches the next (:func:`~celery_dlx.pagination.tasks.cursor_pages`);
- LinkedIn's list has no total (its size is approximate) and an off-by-one that never ends:
  ``K`` pages in flight, a blank page ends a chain, the guards end the endless ones
  (:func:`~celery_dlx.pagination.tasks.window_pages`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from celery.canvas import Signature

from celery_dlx.pagination.plans import Page
from celery_dlx.pagination.tasks import cursor_pages, offset_pages, window_pages


@dataclass(frozen=True)
class Call:
    """One GET: a path under the API's base URL, and its query parameters."""

    path: str
    params: dict[str, str | int]


class FollowersAPI(ABC):
    """One network's follower API, client side."""

    network = ""
    page_size = 1000

    @abstractmethod
    def profile(self, account_id: str) -> Call:
        """The call that tells how many followers an account has."""

    @abstractmethod
    def follower_count(self, body: Any) -> int:
        """The follower count in the profile's answer."""

    @abstractmethod
    def pages(self, signature: Signature, followers: int) -> Signature:
        """The first page tasks (a signature or a group) for an account of ``followers``."""

    @abstractmethod
    def page(self, account_id: str, page: Page) -> Call:
        """The call that fetches ``page``."""

    @abstractmethod
    def items(self, body: Any) -> tuple[list[str], str | None]:
        """The follower ids of a page's answer, and the cursor of the next page (if any)."""


class FacebookAPI(FollowersAPI):
    network = "facebook"
    page_size = 1000

    def profile(self, account_id: str) -> Call:
        return Call(f"/facebook/v19.0/{account_id}", {"fields": "followers_count"})

    def follower_count(self, body: Any) -> int:
        return int(body["followers_count"])

    def pages(self, signature: Signature, followers: int) -> Signature:
        return offset_pages(signature, followers, self.page_size)

    def page(self, account_id: str, page: Page) -> Call:
        return Call(f"/facebook/v19.0/{account_id}/followers", {"offset": page.offset or 0, "limit": page.size})

    def items(self, body: Any) -> tuple[list[str], str | None]:
        return [item["id"] for item in body["data"]], None


class TwitterAPI(FollowersAPI):
    network = "twitter"
    page_size = 5000

    def profile(self, account_id: str) -> Call:
        return Call(f"/twitter/2/users/{account_id}", {"user.fields": "public_metrics"})

    def follower_count(self, body: Any) -> int:
        return int(body["data"]["public_metrics"]["followers_count"])

    def pages(self, signature: Signature, followers: int) -> Signature:
        return cursor_pages(signature, self.page_size)

    def page(self, account_id: str, page: Page) -> Call:
        return Call(
            "/twitter/1.1/followers/ids.json", {"user_id": account_id, "cursor": page.cursor or -1, "count": page.size}
        )

    def items(self, body: Any) -> tuple[list[str], str | None]:
        following = body["next_cursor_str"]
        return [str(i) for i in body["ids"]], None if following == "0" else following


class LinkedInAPI(FollowersAPI):
    network = "linkedin"
    page_size = 1000
    #: Pages in flight per account.
    window = 4

    def profile(self, account_id: str) -> Call:
        return Call(f"/linkedin/v2/networkSizes/{account_id}", {"edgeType": "CompanyFollowedByMember"})

    def follower_count(self, body: Any) -> int:
        return int(body["firstDegreeSize"])

    def pages(self, signature: Signature, followers: int) -> Signature:
        return window_pages(signature, self.page_size, self.window)

    def page(self, account_id: str, page: Page) -> Call:
        return Call(f"/linkedin/v2/followers/{account_id}", {"start": page.offset or 0, "count": page.size})

    def items(self, body: Any) -> tuple[list[str], str | None]:
        return [element["follower"].rsplit(":", 1)[1] for element in body["elements"]], None
