"""celery_dlx.compat on whichever Celery is installed (no servers).

The ``compat`` nox sessions run this module on every supported Celery minor, so each
version-dependent branch is exercised by the version it is written for.
"""

from __future__ import annotations

from typing import Any

import celery
import pytest
from celery import Celery, Task

from celery_dlx import DLXTask, SoftLimitTask
from celery_dlx.broker.headers import argument_reprs
from celery_dlx.compat import (
    CELERY_VERSION,
    DEFAULT_REPR_MAXLEVELS,
    RequestKeptOnCall,
    _release,
    repr_maxlevels,
    repr_of_arguments,
)

pytestmark = pytest.mark.compat

NESTED = [[["deep"]]]  # shown whole at 3 levels, cut at 1


@pytest.fixture
def app() -> Celery:
    app = Celery("compat", set_as_current=False)
    app.conf.update(task_always_eager=True, broker_url="memory://")
    return app


@pytest.mark.parametrize(
    "version, release",
    [("5.4.0", (5, 4)), ("5.6.3", (5, 6)), ("5.7.0rc1", (5, 7)), ("6.0.0b2", (6, 0)), ("5.10.1", (5, 10))],
)
def test_release_reads_major_and_minor(version: str, release: tuple[int, int]) -> None:
    assert _release(version) == release


def test_the_installed_celery_is_one_the_project_supports() -> None:
    assert (5, 4) <= CELERY_VERSION < (6, 0), celery.__version__
    assert _release(celery.__version__) == CELERY_VERSION


def test_repr_depth_is_celerys_default_without_the_setting(app: Celery) -> None:
    # Celery 5.7 has the setting with default 3; before 5.7 it does not exist and saferepr uses 3.
    assert repr_maxlevels(app) == DEFAULT_REPR_MAXLEVELS == 3


def test_repr_depth_follows_task_repr_maxlevels_when_set(app: Celery) -> None:
    default = repr_of_arguments(app, NESTED, 1024)
    app.conf.task_repr_maxlevels = 1
    assert repr_maxlevels(app) == 1
    shallow = repr_of_arguments(app, NESTED, 1024)
    assert "deep" in default and "deep" not in shallow


def test_argument_reprs_are_what_celery_itself_writes_for_the_same_arguments(app: Celery) -> None:
    """The republished headers match the ones the installed Celery puts on a new message."""

    @app.task(shared=False, bind=True, base=DLXTask)
    def work(self: DLXTask, *args: Any, **kwargs: Any) -> None: ...

    args, kwargs = (1, [NESTED, [NESTED]], "x" * 2000), {"page": {"cursor": [1, [2, [3, [4]]]]}}
    message = app.amqp.as_task_v2("id-1", work.name, args=args, kwargs=kwargs)
    work.push_request(id="id-1", args=args, kwargs=kwargs)
    try:
        reprs = argument_reprs(work, None, None)
    finally:
        work.pop_request()
    assert reprs == {"argsrepr": message.headers["argsrepr"], "kwargsrepr": message.headers["kwargsrepr"]}


def test_a_task_class_with_its_own_call_sees_the_workers_request(app: Celery) -> None:
    """SoftLimitTask defines ``__call__``; its body must see the request, not a blank one
    (Celery 5.4 pushed a blank one, see :class:`~celery_dlx.compat.RequestKeptOnCall`)."""

    @app.task(shared=False, bind=True, base=SoftLimitTask)
    def seen(self: SoftLimitTask) -> tuple[Any, ...]:
        request = self.request
        return request.id, request.is_eager, request.called_directly, request.retries

    assert seen.apply(task_id="t-1", retries=2).get() == ("t-1", True, False, 2)


def test_celery_keeps_the_request_in_push_request_from_5_5_and_the_mixin_does_before(app: Celery) -> None:
    """The premise of RequestKeptOnCall, checked on the installed Celery: plain ``Task.__call__``
    loses the request before 5.5 and keeps it from 5.5 on; with the mixin it is kept on all."""

    class Kept(RequestKeptOnCall, Task):  # type: ignore[misc]
        abstract = True

    @app.task(shared=False, bind=True)
    def plain(self: Task) -> Any:
        return self.request.id

    @app.task(shared=False, bind=True, base=Kept)
    def kept(self: Task) -> Any:
        return self.request.id

    for task in (plain, kept):
        task.push_request(id="outer", retries=1)
    try:
        assert kept() == "outer"
        assert plain() == ("outer" if CELERY_VERSION >= (5, 5) else None)
    finally:
        for task in (plain, kept):
            task.pop_request()
