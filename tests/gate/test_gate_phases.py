"""Contract v1.1 parts of the gate that need no AWS: capabilities on the ready line, the replay
comparison, and the outage proxy (against a local echo server)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from flowgate.harness.gate.proxy import OutageProxy
from flowgate.harness.gate.replay import (
    EventKey,
    compare,
    live_events,
    parse_capabilities,
    parse_replay_output,
)
from flowgate.harness.history import History


# ---- capabilities --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "caps"),
    [
        ('flowgate-ready {"capabilities": ["replay"]}\n', {"replay"}),
        (b'flowgate-ready {"capabilities": ["replay", "x"], "impl": "ref"}\n', {"replay", "x"}),
        ("flowgate-ready\n", set()),
        ("flowgate-ready polling now\n", set()),
        ('flowgate-ready {"impl": "node"}', set()),
        ('flowgate-ready {"capabilities": "replay"}', set()),  # not a list
        ('flowgate-ready {"capabilities": [1, "replay"]}', {"replay"}),
        ("flowgate-ready {not json", set()),
        ('hello {"capabilities": ["replay"]}', set()),
    ],
)
def test_parse_capabilities(line: str | bytes, caps: set[str]) -> None:
    assert parse_capabilities(line) == frozenset(caps)


# ---- replay --------------------------------------------------------------------------------------
def _event(entity: str, seq: int, event_id: str, name: str, replay: bool = True) -> str:
    return json.dumps(
        {
            "name": name,
            "entity": {"id": entity},
            "payload": {},
            "metadata": {"eventId": event_id, "isReplay": replay, "sequenceNo": seq, "causationId": "c"},
        }
    )


def _history() -> History:
    h = History(clock=time.time)
    for entity, seq, eid, name in [
        ("o1", 1, "e1", "OrderPlaced"),
        ("o1", 2, "e2", "PaymentAuthorized"),
        ("o1", 2, "e2", "PaymentAuthorized"),  # a FIFO re-publish: same id
        ("o2", 1, "f1", "OrderPlaced"),
        ("other", 1, "g1", "OrderPlaced"),
    ]:
        h.append(
            "impl", "ok", "publish", {"event_id": eid, "entity_id": entity, "seq": seq, "event_type": name}
        )
    return h


def test_live_events_deduplicate_by_id_and_order_by_seq() -> None:
    h = History(clock=time.time)
    h.append("impl", "ok", "publish", {"event_id": "b", "entity_id": "o", "seq": 2, "event_type": "P"})
    h.append("impl", "ok", "publish", {"event_id": "a", "entity_id": "o", "seq": 1, "event_type": "O"})
    h.append("impl", "ok", "publish", {"event_id": "a", "entity_id": "o", "seq": 1, "event_type": "O"})
    assert live_events(h.ops, ["o", "none"]) == {
        "o": [EventKey(1, "a", "O"), EventKey(2, "b", "P")],
        "none": [],
    }


def test_identical_replay_has_no_divergence() -> None:
    live = live_events(_history().ops, ["o1", "o2"])
    out = parse_replay_output(
        "\n".join(
            [
                "starting replay",  # not JSON: ignored
                _event("o1", 2, "e2", "PaymentAuthorized"),  # any order: compared by sequenceNo
                _event("o2", 1, "f1", "OrderPlaced"),
                _event("o1", 1, "e1", "OrderPlaced"),
            ]
        )
    )
    assert not out.errors
    assert out.lines == 3
    assert compare(live, out.events) == []


def test_replay_divergences_name_the_entity_and_first_difference() -> None:
    live = live_events(_history().ops, ["o1", "o2"])
    # a store that appended the replayed commands: the second run has every event twice
    doubled = parse_replay_output(
        "\n".join(
            _event(e, s, i, n)
            for e, s, i, n in [("o1", 1, "e1", "OrderPlaced"), ("o1", 2, "e2", "PaymentAuthorized")] * 2
            + [("o2", 1, "f1", "OrderPlaced")]
        )
    )
    problems = compare(live, doubled.events)
    # sorted by sequenceNo the doubled run reads e1, e1, e2, e2: the first difference is at position 1
    assert problems == [
        "entity o1: event 1 live (e2, PaymentAuthorized, seq 2), replayed (e1, OrderPlaced, seq 1)"
    ]
    wrong_id = parse_replay_output(
        "\n".join([_event("o1", 1, "e1", "OrderPlaced"), _event("o1", 2, "zz", "PaymentAuthorized")])
    )
    problems = compare(live, wrong_id.events)
    assert any("entity o1: event 1" in p and "zz" in p for p in problems)
    assert any("entity o2" in p and "replay lacks" in p for p in problems)  # o2 not replayed at all
    stranger = parse_replay_output(_event("x9", 1, "q", "OrderPlaced"))
    assert any("x9" in p and "did not ask" in p for p in compare({}, stranger.events))


def test_replay_output_errors() -> None:
    out = parse_replay_output(
        "\n".join(["{not json", _event("o1", 1, "e1", "OrderPlaced", replay=False), '{"name": "x"}'])
    )
    assert len(out.errors) == 3
    assert "isReplay" in out.errors[1]
    assert out.events == {}


# ---- the outage proxy ----------------------------------------------------------------------------
@pytest.fixture
def echo_server() -> Iterator[int]:
    """A threaded TCP echo server on localhost; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the proxy resets its upstream side on a cut
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


def _roundtrip(port: int, payload: bytes, conn: socket.socket | None = None) -> bytes:
    """Send ``payload`` and read it back (on ``conn``, or on a new connection closed afterwards)."""
    sock = conn or socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        return got
    finally:
        if conn is None:
            sock.close()


def test_proxy_forwards_cuts_and_restores(echo_server: int) -> None:
    proxy = OutageProxy("127.0.0.1", echo_server).start()
    try:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        kept = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        assert _roundtrip(proxy.port, b"hello" * 1000, kept) == b"hello" * 1000  # keep-alive style reuse
        assert _roundtrip(proxy.port, b"again", kept) == b"again"
        assert proxy.cut() >= 2  # the client side and the upstream side of the open connection
        with pytest.raises(OSError, match=r"reset|closed|Broken pipe"):  # the open connection is gone
            _roundtrip(proxy.port, b"after cut", kept)
        kept.close()
        with pytest.raises(OSError, match=r"reset|closed|Broken pipe"):  # new ones closed on accept
            _roundtrip(proxy.port, b"during outage")
        assert proxy.refused >= 1
        proxy.restore()
        assert _roundtrip(proxy.port, b"back") == b"back"
    finally:
        proxy.close()


def test_proxy_for_url() -> None:
    proxy = OutageProxy.for_url("http://localhost:4566")
    assert (proxy.target_host, proxy.target_port) == ("localhost", 4566)
    assert OutageProxy.for_url("https://sqs.example.com").target_port == 443
    with pytest.raises(ValueError, match="no host"):
        OutageProxy.for_url("not a url")


def test_queue_urls_served_by_the_real_endpoint_are_routed_through_the_proxy() -> None:
    from flowgate.harness.gate.driver import via_endpoint

    real, proxy = "http://127.0.0.1:4566", "http://127.0.0.1:40123"
    assert (
        via_endpoint("http://127.0.0.1:4566/000000000000/q.fifo", real, proxy)
        == "http://127.0.0.1:40123/000000000000/q.fifo"
    )
    other = "https://sqs.us-east-1.amazonaws.com/1234/q.fifo"
    assert via_endpoint(other, real, proxy) == other
