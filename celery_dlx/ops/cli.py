"""``celery -A proj dlx <verb>``: deploy, inspect and operate the celery_dlx broker side.

Registered through Celery's ``celery.commands`` entry point, so it runs with the app and the
broker settings of ``-A``, like Celery's own commands.  Exit codes scripts can rely on:

- ``0`` done (``verify``: no drift);
- ``1`` the operation failed, or ``verify`` found drift;
- ``2`` bad usage (an unknown option, bad JSON, an unknown task or queue);
- ``3`` the broker could not be reached;
- ``4`` partly done: a replay left messages parked because their queue is missing or unknown.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import click
from celery import Celery
from celery.bin.base import CeleryCommand, handle_preload_options
from kombu import Connection

from ..broker.publish import TaskMessage, publish_delayed
from ..broker.topology import Topology
from ..errors import CeleryDLXError, PublishFailed, TopologyMismatch
from ..parking.lot import ParkingLot, ReplayError, SweepResult
from ..parking.migrate import migrate_parking
from ..settings import Settings
from .broker_info import broker_lines, deployment_caveats
from .serve import serve
from .status import broker_status, duration
from .verify import verify as verify_topology

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PARTIAL = 0, 1, 2, 3, 4


class BrokerUnreachable(click.ClickException):
    exit_code = EXIT_UNREACHABLE


class Failed(click.ClickException):
    exit_code = EXIT_FAILED


def _app(ctx: click.Context) -> Celery:
    return ctx.obj.app


def _topology(app: Celery) -> Topology:
    try:
        return Topology(Settings.from_conf(app.conf))
    except CeleryDLXError as exc:
        raise click.UsageError(str(exc)) from exc


@contextmanager
def _connection(app: Celery) -> Iterator[Connection]:
    """The app's broker connection, or exit 3 with the reason; a celery_dlx error met while
    using it (a missing parking queue, a topology mismatch) exits 1 with its message."""
    connection = app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5)
    except Exception as exc:
        connection.release()
        raise BrokerUnreachable(f"cannot reach the broker at {connection.as_uri()}: {exc}") from exc
    try:
        yield connection
    except CeleryDLXError as exc:
        raise Failed(str(exc)) from exc
    finally:
        connection.release()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _progress(label: str) -> Callable[[int, int], None]:
    """A progress callback drawing a bar on stderr when it is a terminal, else a line per 10 %."""
    state: dict[str, Any] = {"bar": None, "shown": 0, "tick": -1}

    def update(done: int, total: int) -> None:
        if sys.stderr.isatty():
            if state["bar"] is None:
                bar = click.progressbar(length=total, label=label, file=sys.stderr)
                bar.__enter__()
                state["bar"] = bar
            state["bar"].update(done - state["shown"])
            state["shown"] = done
            if done >= total:
                state["bar"].__exit__(None, None, None)
            return
        tick = done * 10 // max(total, 1)
        if tick != state["tick"]:
            state["tick"] = tick
            click.echo(f"{label}: {done}/{total}", err=True)

    return update


@click.group(cls=click.Group, name="dlx")
@click.pass_context
@handle_preload_options
def dlx(ctx: click.Context, **kwargs: Any) -> None:
    """celery_dlx: delay topology, parked messages and one-shot sends.

    Exit codes: 0 done, 1 failed (verify: drift), 2 bad usage, 3 broker unreachable,
    4 partly done.
    """


@dlx.command(cls=CeleryCommand)
@click.pass_context
def declare(ctx: click.Context) -> None:
    """Declare the delay topology, the parking queue and the app's work queues (idempotent).

    Run it at deploy time.  Entities that exist with other arguments are reported together and
    the command exits 1; nothing is deleted or changed.
    """
    app = _app(ctx)
    topology = _topology(app)
    queues = list(app.amqp.queues.values())
    with _connection(app) as connection:
        try:
            topology.declare(connection, queues)
        except TopologyMismatch as exc:
            raise Failed(str(exc)) from exc
        about_broker = broker_lines(connection, topology, queues)
    levels = topology.settings.levels
    click.echo(
        f"declared {levels.levels} delay levels ({levels.unit_ms} ms .. {duration(levels.max_delay)}, "
        f"{topology.settings.queue_type}), {topology.parking_queue.name}, and {len(queues)} work queue(s): "
        + ", ".join(sorted(q.name for q in queues))
    )
    for line in about_broker:
        click.echo(line)


@dlx.command(cls=CeleryCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--management-url", default=None,
    help="RabbitMQ management API (default: $CELERY_DLX_MANAGEMENT_URL, else http://<broker host>:15672).",
)  # fmt: skip
@click.option("--amqp-only", is_flag=True, help="Do not use the management API (bindings and extra entities go unchecked).")
@click.option("--strict", is_flag=True, help="Count foreign bindings (other apps' queues bound to <prefix>.deliver) as drift.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool, management_url: str | None, amqp_only: bool, strict: bool) -> None:
    """Check the broker against the topology this app expects; exit 1 on drift.

    Read-only: safe in a deploy pipeline.  Prints missing (-), extra (+) and differing (~)
    entities and arguments, and (=) foreign bindings: another app's work queues bound to
    this prefix's ``deliver`` exchange, not drift unless ``--strict``.
    """
    app = _app(ctx)
    topology = _topology(app)
    queues = list(app.amqp.queues.values())
    with _connection(app) as connection:
        report = verify_topology(
            connection, topology, queues, management_url=management_url,
            use_management=False if amqp_only else None, strict=strict,
        )  # fmt: skip
        broker, known = deployment_caveats(connection, topology, queues)
    if as_json:
        _echo_json({**report.as_dict(), "broker": str(broker), "known_issues": known})
    else:
        click.echo(f"broker: {broker}")
        for line in [*(f"! known issue: {text}" for text in known), *report.lines()]:
            click.echo(line)
    ctx.exit(EXIT_FAILED if report.drift else EXIT_OK)


@dlx.command(cls=CeleryCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--all-levels", is_flag=True, help="Show empty delay levels too.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, all_levels: bool) -> None:
    """Messages waiting per delay level, parked messages, work queues and circuit breakers."""
    app = _app(ctx)
    topology = _topology(app)
    with _connection(app) as connection:
        report = broker_status(app, connection, topology)
        broker, known = deployment_caveats(connection, topology, app.amqp.queues.values())
    if as_json:
        _echo_json({**report.as_dict(), "broker": str(broker), "known_issues": known})
    else:
        click.echo(f"broker: {broker}")
        for line in [*(f"! known issue: {text}" for text in known), *report.lines(all_levels)]:
            click.echo(line)


@dlx.command(cls=CeleryCommand)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
@click.pass_context
def parked(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List parked messages (oldest first): task, id, retries, reason, error, parked at.

    The messages stay parked (they are received and given back; a quorum queue counts that
    as a delivery).
    """
    app = _app(ctx)
    with _connection(app) as connection:
        lot = ParkingLot(connection, _topology(app))
        total = lot.count()
        messages = lot.browse(limit) if total else []
    if as_json:
        _echo_json({"total": total, "messages": [m.as_dict() for m in messages]})
        return
    click.echo(f"{total} parked message(s)" + (f", the first {len(messages)}:" if messages and total > len(messages) else ":" if messages else ""))
    for m in messages:
        when = datetime.fromtimestamp(m.parked_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if m.parked_at else "-"
        retries = "-" if m.retries is None else m.retries
        click.echo(f"  {when}  {m.task}[{m.id}]  retries={retries}  queue={m.queue or '-'}  reason={m.reason}")
        if m.error or m.message:
            click.echo(f"      {m.error}: {m.message}")


def _sweep_report(ctx: click.Context, verb: str, result: SweepResult, as_json: bool) -> None:
    if as_json:
        _echo_json(result.as_dict())
    else:
        click.echo(f"{verb} {result.moved} of {result.examined} examined message(s); {result.kept} kept in the lot")
        for queue, count in sorted(result.to_queues.items()):
            click.echo(f"  -> {queue}: {count}")
        if result.no_destination:
            click.echo(f"  {result.no_destination} name no work queue: replay them with --to QUEUE", err=True)
        for queue, count in sorted(result.missing_queues.items()):
            click.echo(f"  {count} kept: queue {queue!r} does not exist (run `celery dlx declare`, or use --to)", err=True)
    if result.no_destination or result.missing_queues:
        ctx.exit(EXIT_PARTIAL)


@dlx.command(cls=CeleryCommand)
@click.option("--task", default=None, help="Only messages of this task name.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Replay at most this many.")
@click.option("--to", "to", default=None, help="Send them to this queue instead of the one each came from.")
@click.option("--reset-retries", is_flag=True, help="Start each task's retry count at 0 again (a full new set of retries).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def replay(ctx: click.Context, task: str | None, limit: int | None, to: str | None, reset_retries: bool, as_json: bool) -> None:
    """Move parked messages back to work, confirmed by the broker.

    Interrupted at any point, nothing is lost: a message leaves the lot only after its copy
    in the work queue is confirmed.
    """
    app = _app(ctx)
    with _connection(app) as connection:
        lot = ParkingLot(connection, _topology(app))
        try:
            result = lot.replay(task=task, limit=limit, to=to, reset_retries=reset_retries, progress=_progress("replaying"))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        except ReplayError as exc:
            raise Failed(f"{exc} (replayed before stopping: {exc.done.moved})") from exc
    _sweep_report(ctx, "replayed", result, as_json)


@dlx.command(cls=CeleryCommand)
@click.option("--yes", is_flag=True, help="Confirm: parked messages are deleted for good.")
@click.option("--task", default=None, help="Only messages of this task name.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Delete at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def purge(ctx: click.Context, yes: bool, task: str | None, limit: int | None, as_json: bool) -> None:
    """Delete parked messages (all, or those of --task).  Needs --yes."""
    if not yes:
        raise click.UsageError("purge deletes parked messages for good: add --yes to confirm")
    app = _app(ctx)
    with _connection(app) as connection:
        lot = ParkingLot(connection, _topology(app))
        try:
            result = lot.purge(task=task, limit=limit, progress=_progress("purging"))
        except ReplayError as exc:
            raise Failed(f"{exc} (deleted before stopping: {exc.done.moved})") from exc
    _sweep_report(ctx, "deleted", result, as_json)


def _json_option(value: str | None, kind: type, name: str) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from exc
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {'array' if kind is list else 'object'}", param_hint=name)
    return parsed


@dlx.command(cls=CeleryCommand)
@click.argument("task_name", metavar="TASK")
@click.option("--args", "args_json", default=None, help='Positional arguments as a JSON array, e.g. \'[1, "a"]\'.')
@click.option("--kwargs", "kwargs_json", default=None, help='Keyword arguments as a JSON object, e.g. \'{"account": 7}\'.')
@click.option("--queue", default=None, help="Work queue (default: where the app's routes send the task).")
@click.option("--countdown", default=None, type=click.FloatRange(min=0), help="Run after this many seconds, held by the broker.")
@click.option("--no-check", is_flag=True, help="Send even if the app does not know the task name.")
@click.pass_context
def send(
    ctx: click.Context,
    task_name: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    countdown: float | None,
    no_check: bool,
) -> None:
    """Enqueue one task, confirmed by the broker, and print its id (for crontab lines).

    Exits 0 only once the broker has the message.
    """
    app = _app(ctx)
    args = _json_option(args_json, list, "--args")
    kwargs = _json_option(kwargs_json, dict, "--kwargs")
    app.loader.import_default_modules()
    if not no_check and task_name not in app.tasks:
        raise click.UsageError(f"the app has no task {task_name!r} (check -A and the name, or use --no-check)")
    if queue is not None and queue not in app.amqp.queues:
        raise click.UsageError(f"the app declares no queue {queue!r}: add it to task_queues")
    destination = queue or app.amqp.router.route({}, task_name, args, kwargs)["queue"].name
    try:
        task_id = _send(app, task_name, args, kwargs, destination, countdown or 0.0)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--countdown") from exc
    except CeleryDLXError as exc:
        raise Failed(str(exc)) from exc
    except Exception as exc:
        raise BrokerUnreachable(f"the broker did not take the message: {exc!r}") from exc
    click.echo(task_id)


def _send(app: Celery, name: str, args: list[Any], kwargs: dict[str, Any], queue: str, countdown: float) -> str:
    """Publish ``name`` for ``queue`` on the confirming publisher; with a countdown, into the
    delay topology (never Celery's ``countdown``, which a worker would hold)."""
    try:
        return publish_delayed(app, queue, countdown, message=TaskMessage(name, args, kwargs)).task_id
    except PublishFailed as failed:  # ``send`` tells the publisher's errors from the broker's by the cause
        raise (failed.cause or failed) from None


@dlx.command(name="migrate-parking", cls=CeleryCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def migrate_parking_command(ctx: click.Context, as_json: bool) -> None:
    """Re-declare the parking queue with the configured limits, keeping its messages.

    For a lot declared before dlx_parking_max_messages / dlx_parking_max_age existed, or with
    other values (RabbitMQ refuses to change a queue's arguments).  The messages are moved to
    <lot>.migrating and back, each copy confirmed before its original is removed; run it again
    if it is interrupted.
    """
    app = _app(ctx)
    topology = _topology(app)
    with _connection(app) as connection:
        try:
            result = migrate_parking(connection, topology, progress=_progress("moving"))
        except ReplayError as exc:
            raise Failed(f"{exc}; nothing is lost: run migrate-parking again") from exc
    if as_json:
        _echo_json(result.as_dict())
    elif not result.migrated:
        click.echo(f"{topology.parking_queue.name} already has the configured arguments ({result.parked} parked)")
    else:
        click.echo(
            f"{topology.parking_queue.name} re-declared with {topology.parking_arguments()}: "
            f"{result.moved_aside} moved aside, {result.moved_back} moved back, {result.parked} parked now"
        )


dlx.add_command(serve)
