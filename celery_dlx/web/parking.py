"""The parking-lot pages: list and filter, one message in detail, and replay or delete.

Every action goes through the lot's own loss-free sweep (:meth:`~..parking.lot.ParkingLot.replay`
and :meth:`~..parking.lot.ParkingLot.purge`): a message leaves the lot only once its copy is
confirmed where it goes, exactly as with ``celery dlx replay``.  An action is two requests: a
GET that shows what will happen and a POST, with the CSRF token, that does it.  Read-only
dashboards answer both with 403.  Each action is logged with who did what to how many.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response

from ..parking.lot import MissingParkingQueue, ParkingLot, ReplayError, SweepResult, parked_message
from ..parking.park import ParkedFilter
from . import csrf
from .broker import broker
from .lot_page import arguments, lot_page, selected
from .overview import celery_app, topology

logger = logging.getLogger(__name__)

parking = Blueprint("parking", __name__, url_prefix="/parked")

ACTIONS = ("replay", "delete")
FILTER_FIELDS = ("task", "reason", "queue", "task_id")


def _filter(values: Any) -> ParkedFilter:
    """The filter named by request arguments (empty values: any)."""
    return ParkedFilter(**{name: values.get(name) or None for name in FILTER_FIELDS})


def _filter_args(where: ParkedFilter) -> dict[str, Any]:
    return {name: value for name in FILTER_FIELDS if (value := getattr(where, name))}


def _writable() -> None:
    if current_app.config["DLX_READ_ONLY"]:
        abort(403, description="this dashboard is read-only")


@parking.get("")
def index() -> str:
    where = _filter(request.args)
    app = celery_app()
    with broker(app) as connection:
        lot = ParkingLot(connection, topology())
        try:
            total = lot.count()
        except MissingParkingQueue as exc:
            abort(404, description=str(exc))
        messages = lot.browse_messages(current_app.config["DLX_BROWSE_LIMIT"]) if total else []
    page = lot_page(total, messages, where, request.args.get("page", 1, type=int), current_app.config["DLX_PAGE_SIZE"])
    return render_template("parked.html", lot=page, where=where, filter_args=_filter_args(where))


@parking.get("/message/<task_id>")
def detail(task_id: str) -> str:
    app = celery_app()
    with broker(app) as connection:
        messages = ParkingLot(connection, topology()).browse_messages(current_app.config["DLX_BROWSE_LIMIT"])
    found = [m for m in messages if selected(m, ParkedFilter(task_id=task_id))]
    if not found:
        abort(404, description=f"no message {task_id!r} among the first {len(messages)} parked")
    return render_template("detail.html", parked=parked_message(found[0]), arguments=arguments(found[0]))


@parking.get("/confirm")
def confirm() -> str:
    """What an action would do, with the form that does it."""
    _writable()
    action = request.args.get("action", "")
    if action not in ACTIONS:
        abort(400, description=f"unknown action {action!r}")
    where = _filter(request.args)
    queues = sorted(celery_app().amqp.queues)
    return render_template("confirm.html", action=action, where=where, filter_args=_filter_args(where), queues=queues)


@parking.post("/action")
def act() -> Response:
    _writable()
    csrf.check()
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400, description=f"unknown action {action!r}")
    if request.form.get("confirmed") != "yes":
        abort(400, description="the action was not confirmed")
    where = _filter(request.form)
    app = celery_app()
    with broker(app) as connection:
        lot = ParkingLot(connection, topology())
        try:
            result = _run(lot, action, where)
        except ValueError as exc:
            abort(400, description=str(exc))
        except ReplayError as exc:
            _log(action, where, exc.done, failed=str(exc))
            flash(f"{action} stopped: {exc}; {exc.done.moved} done before stopping, nothing lost", "error")
            return redirect(url_for("parking.index", **_filter_args(where)))
    _log(action, where, result)
    flash(_summary(action, result), "error" if result.no_destination or result.missing_queues else "info")
    return redirect(url_for("parking.index"))


def _run(lot: ParkingLot, action: str, where: ParkedFilter) -> SweepResult:
    if action == "delete":
        return lot.purge(where=where)
    to = request.form.get("to") or None
    return lot.replay(where=where, to=to, reset_retries=request.form.get("reset_retries") == "yes")


def _summary(action: str, result: SweepResult) -> str:
    verb = "replayed" if action == "replay" else "deleted"
    text = f"{verb} {result.moved} of {result.examined} examined message(s); {result.kept} kept in the lot"
    if result.to_queues:
        text += " (" + ", ".join(f"{count} to {queue}" for queue, count in sorted(result.to_queues.items())) + ")"
    if result.no_destination:
        text += f"; {result.no_destination} name no work queue: replay them to a chosen queue"
    for queue, count in sorted(result.missing_queues.items()):
        text += f"; {count} kept: queue {queue} does not exist"
    return text


def _log(action: str, where: ParkedFilter, result: SweepResult, failed: str | None = None) -> None:
    """One INFO line per action, its fields in ``extra`` for JSON log formatters."""
    selection = _filter_args(where) or {"all": "yes"}
    logger.info(
        "dashboard %s by %s where %s: %d moved of %d examined, %d kept%s",
        action,
        g.who,
        " ".join(f"{k}={v}" for k, v in selection.items()),
        result.moved,
        result.examined,
        result.kept,
        f" (stopped: {failed})" if failed else "",
        extra={
            "dlx_action": action,
            "dlx_who": g.who,
            "dlx_filter": selection,
            "dlx_moved": result.moved,
            "dlx_examined": result.examined,
            "dlx_kept": result.kept,
        },
    )
