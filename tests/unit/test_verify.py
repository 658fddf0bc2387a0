"""The verify diff on canned management API answers (shaped like RabbitMQ 3.10.8's), no broker."""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from kombu import Connection, Exchange, Queue

from celery_dlx import Settings, Topology
from celery_dlx.broker.plan import DelayLevels
from celery_dlx.ops.verify import (
    BrokerState,
    Entity,
    ManagementAPI,
    ManagementUnavailable,
    Report,
    _refusal,
    diff,
    expected,
    verify,
)

WORK = Queue("p.work", Exchange("p.work"), routing_key="p.work")


def topology(queue_type: str = "classic") -> Topology:
    return Topology(Settings(prefix="p", queue_type=queue_type, levels=DelayLevels(unit_ms=10, levels=2)))


def exchange(name: str, kind: str, **arguments: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "durable": True, "auto_delete": False, "arguments": arguments}


def queue(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "type": "classic", "durable": True, "auto_delete": False, "arguments": arguments or {}}


def binding(source: str, destination: str, key: str, kind: str = "queue", **arguments: str) -> dict[str, Any]:
    return {"source": source, "destination": destination, "destination_type": kind, "routing_key": key, "arguments": arguments}


AE = {"alternate-exchange": "p.parking"}
#: The parking lot's retention as the default settings declare it (100 000 messages, 30 days).
RETENTION = {"x-max-length": 100_000, "x-overflow": "drop-head", "x-message-ttl": 2_592_000_000}
LISTING: dict[str, Any] = {
    "exchanges": [
        exchange("", "direct"),
        exchange("amq.topic", "topic"),
        exchange("p.parking", "fanout"),
        exchange("p.deliver", "headers", **AE),
        exchange("p.delay.10ms.L00", "topic", **AE),
        exchange("p.delay.10ms.L01", "topic", **AE),
        exchange("p.work", "direct"),
    ],
    "queues": [
        queue("p.parking", RETENTION),
        queue("p.delay.10ms.L00", {"x-dead-letter-exchange": "p.deliver", "x-message-ttl": 10}),
        queue("p.delay.10ms.L01", {"x-dead-letter-exchange": "p.delay.10ms.L00", "x-message-ttl": 20}),
        queue("p.work"),
        queue("another.app"),
    ],
    "bindings": [
        *(binding("", name, name) for name in ["p.parking", "p.delay.10ms.L00", "p.delay.10ms.L01", "p.work", "another.app"]),
        binding("p.parking", "p.parking", ""),
        binding("p.delay.10ms.L00", "p.delay.10ms.L00", "1.#"),
        binding("p.delay.10ms.L00", "p.deliver", "0.#", kind="exchange"),
        binding("p.delay.10ms.L01", "p.delay.10ms.L01", "*.1.#"),
        binding("p.delay.10ms.L01", "p.delay.10ms.L00", "*.0.#", kind="exchange"),
        binding("p.deliver", "p.work", "", **{"dlx_queue": "p.work", "x-match": "all"}),
        binding("p.work", "p.work", "p.work"),
    ],
    "vhost": {"name": "/", "default_queue_type": "undefined"},
}


def listing() -> dict[str, Any]:
    return copy.deepcopy(LISTING)


def check(
    broker: dict[str, Any], topo: Topology | None = None, destinations: Sequence[Queue] = (WORK,), strict: bool = False
) -> Report:
    topo = topo or topology()
    return diff(expected(topo, destinations), BrokerState.from_api(**broker), topo.owns, strict=strict)


def find(broker: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    return next(item for item in broker[kind] if item["name"] == name)


def test_a_matching_broker_has_no_drift() -> None:
    report = check(listing())
    assert not report.drift
    # 4 exchanges, 4 queues; bindings: parking, 2 waits, 2 passes, 1 destination.
    assert report.lines() == ["no drift: 14 expected exchanges, queues and bindings (management API) match"]


def test_a_missing_queue_and_its_binding_are_listed() -> None:
    broker = listing()
    broker["queues"].remove(find(broker, "queues", "p.delay.10ms.L01"))
    broker["bindings"] = [b for b in broker["bindings"] if b["destination"] != "p.delay.10ms.L01"]
    report = check(broker)
    assert report.drift
    assert report.missing == [Entity("queue", "p.delay.10ms.L01"), Entity("binding", "p.delay.10ms.L01 -> queue p.delay.10ms.L01 key '*.1.#'")]
    assert report.lines()[:2] == [
        "- missing queue p.delay.10ms.L01",
        "- missing binding p.delay.10ms.L01 -> queue p.delay.10ms.L01 key '*.1.#'",
    ]
    assert not report.extra and not report.different


def test_extra_entities_are_only_looked_for_in_celery_dlx_namespace() -> None:
    broker = listing()
    broker["exchanges"] += [exchange("p.delay.1000ms.L00", "topic", **AE), exchange("other.delay.10ms.L00", "topic")]
    broker["queues"] += [queue("p.delay.1000ms.L00"), queue("p.delay.10ms.L02"), queue("p.unlisted_app_queue")]
    report = check(broker)
    assert report.extra == [
        Entity("exchange", "p.delay.1000ms.L00"),
        Entity("queue", "p.delay.1000ms.L00"),
        Entity("queue", "p.delay.10ms.L02"),
    ]
    assert "+ extra queue p.delay.1000ms.L00" in report.lines()
    assert not report.missing and not report.different


def test_differing_arguments_type_and_durability_name_the_entity() -> None:
    broker = listing()
    find(broker, "queues", "p.delay.10ms.L01")["arguments"]["x-message-ttl"] = 12345
    find(broker, "queues", "p.delay.10ms.L00")["arguments"]["x-max-length"] = 5
    find(broker, "exchanges", "p.deliver")["type"] = "topic"
    find(broker, "exchanges", "p.delay.10ms.L00")["arguments"] = {}
    find(broker, "queues", "p.parking")["durable"] = False
    lines = check(broker).lines()
    assert lines == [
        "~ exchange p.deliver: type expected 'headers', found 'topic'",
        "~ exchange p.delay.10ms.L00: alternate-exchange expected 'p.parking', found absent",
        "~ queue p.parking: durable expected True, found False",
        "~ queue p.delay.10ms.L00: x-max-length expected absent, found 5",
        "~ queue p.delay.10ms.L01: x-message-ttl expected 20, found 12345",
        "drift: 0 missing, 0 extra, 5 different; 14 expected exchanges, queues and bindings (management API)",
    ]


def test_a_classic_ladder_where_quorum_is_expected() -> None:
    lines = check(listing(), topology("quorum")).lines()
    assert "~ queue p.parking: x-queue-type expected 'quorum', found 'classic'" in lines
    assert "~ queue p.delay.10ms.L00: x-dead-letter-strategy expected 'at-least-once', found absent" in lines
    assert not any(line.startswith("~ queue p.work") for line in lines)  # the app's queue stays classic


def test_x_queue_type_listed_for_every_queue_as_rabbitmq_4_does_matches() -> None:
    broker = listing()
    for item in broker["queues"]:
        item["arguments"]["x-queue-type"] = item["type"]
    assert not check(broker).drift


@pytest.mark.parametrize("default", ["quorum", "rabbit_quorum_queue"])
def test_a_queue_declared_without_type_gets_the_vhost_default(default: str) -> None:
    broker = listing()
    find(broker, "queues", "p.work").update(type="quorum", arguments={"x-queue-type": "quorum"})
    assert check(broker).lines()[0] == "~ queue p.work: x-queue-type expected 'classic', found 'quorum'"
    broker["vhost"]["default_queue_type"] = default
    report = check(broker)
    assert [str(d.entity) for d in report.different] == ["queue p.parking", "queue p.delay.10ms.L00", "queue p.delay.10ms.L01"]
    assert {d.expected for d in report.different} == {"quorum"}


def test_values_compare_as_rabbitmq_does_bool_is_not_int_and_kombu_seconds_become_ms() -> None:
    work = Queue("p.work", Exchange("p.work"), routing_key="p.work", message_ttl=1.5, queue_arguments={"x-single-active-consumer": True})
    broker = listing()
    find(broker, "queues", "p.work")["arguments"] = {"x-message-ttl": 1500, "x-single-active-consumer": True}
    assert not check(broker, destinations=[work]).drift
    find(broker, "queues", "p.work")["arguments"]["x-single-active-consumer"] = 1
    assert check(broker, destinations=[work]).lines()[0] == "~ queue p.work: x-single-active-consumer expected True, found 1"


def test_binding_drift_missing_extra_and_changed_arguments() -> None:
    broker = listing()
    deliver_work = binding("p.deliver", "p.work", "", **{"dlx_queue": "p.work", "x-match": "all"})
    broker["bindings"].remove(deliver_work)
    broker["bindings"] += [
        binding("p.deliver", "p.work", "", **{"dlx_queue": "p.elsewhere", "x-match": "all"}),
        binding("p.deliver", "p.gone", "", **{"dlx_queue": "p.gone", "x-match": "all"}),
        binding("amq.topic", "p.parking", "#"),
        binding("amq.topic", "another.app", "#"),
    ]
    strict = check(broker, strict=True)
    assert strict.missing == [Entity("binding", "p.deliver -> queue p.work key '' arguments {'dlx_queue': 'p.work', 'x-match': 'all'}")]
    assert [str(e) for e in strict.extra] == [
        "binding amq.topic -> queue p.parking key '#'",
        "binding p.deliver -> queue p.gone key '' arguments {'dlx_queue': 'p.gone', 'x-match': 'all'}",
        "binding p.deliver -> queue p.work key '' arguments {'dlx_queue': 'p.elsewhere', 'x-match': 'all'}",
    ]
    assert strict.foreign == []
    # By default p.gone, a queue neither celery_dlx's nor the app's, is another app's: foreign.
    report = check(broker)
    assert report.missing == strict.missing
    assert [str(e) for e in report.extra] == [
        "binding amq.topic -> queue p.parking key '#'",
        "binding p.deliver -> queue p.work key '' arguments {'dlx_queue': 'p.elsewhere', 'x-match': 'all'}",
    ]
    assert [str(e) for e in report.foreign] == [
        "binding p.deliver -> queue p.gone key '' arguments {'dlx_queue': 'p.gone', 'x-match': 'all'}"
    ]


def test_without_destinations_every_deliver_binding_is_extra_when_strict_else_foreign() -> None:
    work_binding = "binding p.deliver -> queue p.work key '' arguments {'dlx_queue': 'p.work', 'x-match': 'all'}"
    strict = check(listing(), destinations=[], strict=True)
    assert [str(e) for e in strict.extra] == [work_binding] and strict.drift
    report = check(listing(), destinations=[])
    assert report.extra == [] and [str(e) for e in report.foreign] == [work_binding] and not report.drift
    assert report.lines()[0] == f"= foreign {work_binding} (a queue this app does not list; not drift, --strict counts it)"
    assert report.as_dict()["foreign"] == [{"kind": "binding", "name": work_binding[len("binding "):]}]


def test_report_as_dict_is_json() -> None:
    broker = listing()
    find(broker, "queues", "p.delay.10ms.L01")["arguments"]["x-message-ttl"] = 12345
    broker["queues"].remove(find(broker, "queues", "p.parking"))
    data = json.loads(json.dumps(check(broker).as_dict()))
    assert data["method"] == "management" and data["drift"] is True and data["checked"] == 14
    assert data["missing"] == [{"kind": "queue", "name": "p.parking"}]
    assert data["different"] == [
        {"kind": "queue", "name": "p.delay.10ms.L01", "what": "x-message-ttl", "expected": 20, "actual": 12345}
    ]
    assert data["extra"] == [] and data["unchecked"] == []


@pytest.mark.parametrize(
    "reply, what, wanted, actual",
    [
        ("inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '80' but current is '12345'", "x-message-ttl", 80, 12345),
        ("inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none", "x-queue-type", "quorum", None),
        ("inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '10' of type 'signedint'", "x-message-ttl", None, 10),
        ("inequivalent arg 'durable' for exchange 'e' in vhost '/': received 'true' but current is 'false'", "durable", True, False),
        ("inequivalent arg 'type' for exchange 'e' in vhost '/': received 'headers' but current is 'topic'", "type", "headers", "topic"),
    ],
)  # fmt: skip
def test_precondition_failed_texts_become_differences(reply: str, what: str, wanted: Any, actual: Any) -> None:
    view = {"durable": True, "type": "headers", "x-message-ttl": 80, "x-queue-type": "quorum"}
    if wanted is None:
        del view[what]
    difference = _refusal(Entity("queue", "q"), view, f"PRECONDITION_FAILED - {reply}")
    assert (difference.what, difference.expected, difference.actual) == (what, wanted, actual)


def test_an_unknown_refusal_is_kept_verbatim() -> None:
    difference = _refusal(Entity("queue", "q"), {}, "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q'")
    assert (difference.what, difference.actual) == ("declaration", "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q'")


@pytest.mark.parametrize(
    "broker_url, management_url, base, login",
    [
        ("amqp://guest:guest@127.0.0.1:5672//", None, "http://127.0.0.1:15672", ("guest", "guest")),
        ("amqp://rabbit.internal", None, "http://rabbit.internal:15672", ("guest", "guest")),
        ("amqps://u%40x:p%2Fw@rabbit.internal:5671/v", None, "https://rabbit.internal:15671", ("u@x", "p/w")),
        ("amqp://u:p@[::1]:5672/v", None, "http://[::1]:15672", ("u", "p")),
        ("amqp://u:p@h//", "https://mgmt.example/rabbitmq/", "https://mgmt.example/rabbitmq", ("u", "p")),
        ("amqp://u:p@h//", "http://admin:s%3Acret@mgmt:15672", "http://mgmt:15672", ("admin", "s:cret")),
    ],
)
def test_management_api_location_and_login(broker_url: str, management_url: str | None, base: str, login: tuple[str, str]) -> None:
    api = ManagementAPI.for_connection(Connection(broker_url), management_url)
    assert (api.base_url, (api.username, api.password)) == (base, login)


class FakeManagement(BaseHTTPRequestHandler):
    """Serves LISTING like the management API and records what was asked, and with which login."""

    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Authorization")))
        path = self.path.partition("?")[0]
        kind, _, vhost = path.removeprefix("/api/").partition("/")
        if kind == "garbage":
            self._answer(200, b"<html>not the API</html>")
        elif vhost != "my%2Fvhost" or self.headers.get("Authorization") != _basic("u@x", "p/w"):
            self._answer(401, b'{"error": "not_authorised"}')
        else:
            self._answer(200, json.dumps(LISTING["vhost" if kind == "vhosts" else kind]).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def management() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeManagement)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeManagement.requests = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_verify_reads_the_vhost_percent_encoded_with_the_broker_login(management: str) -> None:
    connection = Connection("amqp://u%40x:p%2Fw@broker:5672/my%2Fvhost")
    report = verify(connection, topology(), [WORK], management_url=management, use_management=True)
    assert report.method == "management" and not report.drift
    paths = [path.partition("?")[0] for path, _ in FakeManagement.requests]
    assert paths == ["/api/exchanges/my%2Fvhost", "/api/queues/my%2Fvhost", "/api/bindings/my%2Fvhost", "/api/vhosts/my%2Fvhost"]
    assert all("columns=" in path for path, _ in FakeManagement.requests[:3])


def test_a_refused_login_or_a_page_that_is_not_the_api_is_unavailable(management: str) -> None:
    with pytest.raises(ManagementUnavailable, match=r"answered 401 .* to GET /api/exchanges/%2F$"):
        verify(Connection("amqp://u:wrong@broker//"), topology(), management_url=management, use_management=True)
    with pytest.raises(ManagementUnavailable, match="something other than JSON"):
        ManagementAPI(management, "u", "p").get("/api/garbage")


def test_an_unreachable_api_is_unavailable_when_required() -> None:
    with pytest.raises(ManagementUnavailable, match=r"not reachable at http://127\.0\.0\.1:1 "):
        verify(Connection("amqp://u:p@broker//"), topology(), management_url="http://127.0.0.1:1", use_management=True)
