"""What tracking refuses before it touches Redis or the broker: settings, untrackable tasks and
canvases, non-page tasks (no servers: a memory broker and the in-memory cache backend)."""

from __future__ import annotations

import pytest
from celery import Celery, chain, group

from celery_dlx import ConfigurationError
from celery_dlx.pagination.tasks import PageTask, cursor_pages, offset_pages
from celery_dlx.tracking.store import DEFAULT_TTL, TrackingConfig, TreeResult, UntrackableTask, start_tree

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


def test_tracking_uses_the_redis_result_backend_by_default() -> None:
    config = TrackingConfig.from_conf({"result_backend": "redis://db:6379/3", "dlx_prefix": "app1"})
    assert config == TrackingConfig("redis://db:6379/3", "app1", DEFAULT_TTL)


def test_dlx_tracking_url_and_ttl_win() -> None:
    conf = {"result_backend": "redis://db/3", "dlx_tracking_url": "redis://other/0", "dlx_tracking_ttl": 60}
    assert TrackingConfig.from_conf(conf) == TrackingConfig("redis://other/0", "celery_dlx", 60)


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"result_backend": "db+sqlite:///r.db"}, "dlx_tracking_url"),
        ({}, "dlx_tracking_url"),
        ({"dlx_tracking_url": "redis://x", "dlx_tracking_ttl": 0}, "dlx_tracking_ttl"),
        ({"dlx_tracking_url": "redis://x", "dlx_tracking_ttl": 1.5}, "dlx_tracking_ttl"),
    ],
)
def test_bad_tracking_settings_are_named(conf: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrackingConfig.from_conf(conf)


@pytest.fixture
def app() -> Celery:
    app = Celery("tracking", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.dlx_tracking_url = "redis://127.0.0.1:1/0"  # never reached: every case fails before

    @app.task(shared=False, name="t.kept")
    def kept() -> None: ...

    @app.task(shared=False, name="t.ignored", ignore_result=True)
    def ignored() -> None: ...

    @app.task(shared=False, bind=True, base=PageTask, name="t.page")
    def page(self: PageTask, page: object) -> None: ...

    return app


def test_a_task_that_ignores_its_result_cannot_be_tracked(app: Celery) -> None:
    with pytest.raises(UntrackableTask, match=r"t\.ignored.*ignore_result=False"):
        start_tree(app.tasks["t.ignored"].s())
    with pytest.raises(UntrackableTask, match="ignore_result"):
        start_tree(group(app.tasks["t.kept"].s(), app.tasks["t.ignored"].s()))
    with pytest.raises(UntrackableTask, match="ignore_result"):
        start_tree(app.tasks["t.kept"].s(), ignore_result=True)
    with pytest.raises(UntrackableTask, match="ignore_result"):
        start_tree(app.tasks["t.kept"].s().set(ignore_result=True))


def test_app_wide_ignore_result_is_refused_too() -> None:
    app = Celery("ignoring", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_ignore_result = True

    @app.task(shared=False, name="t.any")
    def any_task() -> None: ...

    with pytest.raises(UntrackableTask, match="ignore_result"):
        start_tree(any_task.s())


def test_trees_need_a_key_value_result_backend() -> None:
    app = Celery("no_backend", broker="memory://", set_as_current=False)
    with pytest.raises(UntrackableTask, match="result_backend"):
        TreeResult("root", app=app)


def test_only_signatures_and_groups_of_them_are_tracked(app: Celery) -> None:
    kept = app.tasks["t.kept"]
    with pytest.raises(TypeError, match="plain task signatures"):
        start_tree(chain(kept.s(), kept.s()))
    with pytest.raises(TypeError, match="plain task signatures"):
        start_tree(group(kept.s(), group(kept.s(), kept.s())))
    with pytest.raises(ValueError, match="empty group"):
        start_tree(group([]))


def test_page_canvases_need_page_tasks(app: Celery) -> None:
    with pytest.raises(TypeError, match="base=PageTask"):
        cursor_pages(app.tasks["t.kept"].s(), page_size=10)


def test_page_canvases_carry_primitive_pages_with_run_derived_ids(app: Celery) -> None:
    canvas = offset_pages(app.tasks["t.page"].s(), total=25, page_size=10)
    run = canvas.tasks[0].id
    assert [sig.id for sig in canvas.tasks] == [run, f"{run}.1", f"{run}.2"]
    assert [sig.kwargs["page"]["offset"] for sig in canvas.tasks] == [0, 10, 20]
