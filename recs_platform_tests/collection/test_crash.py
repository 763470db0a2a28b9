"""Kill the collector with SIGKILL while a client is sending: every acknowledged event survives."""

import threading
import time
from collections import Counter

import httpx2 as httpx

from recs_platform.collection.landing_files import JOURNAL_FOLDER
from recs_platform_tests.collection.servers import (
    free_port,
    landed_events,
    start_collector,
    stop_collector,
)


def test_every_acknowledged_event_survives_a_sigkill(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/collect"
    process = start_collector(tmp_path, port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop_sending = threading.Event()

    def send(sender: int) -> None:
        with httpx.Client(timeout=5) as client:
            for batch in range(10_000):
                if stop_sending.is_set():
                    return
                ids = [f"{sender}-{batch}-{n}" for n in range(5)]
                events = [
                    {
                        "event_id": event_id,
                        "session_id": f"s{sender}",
                        "event_type": "pageview",
                        "url": "/",
                        "client_ts": int(time.time() * 1000),
                    }
                    for event_id in ids
                ]
                try:
                    response = client.post(url, json=events)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        acknowledged.extend(ids)

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 2_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_collector(process, kill=True)
    stop_sending.set()
    for sender in senders:
        sender.join(timeout=10)
    killed_with = len(acknowledged)
    journals = list((tmp_path / "landing" / JOURNAL_FOLDER).glob("*.journal"))

    restarted = start_collector(tmp_path, free_port())
    stop_collector(restarted)
    landed = Counter(event["event_id"] for event in landed_events(tmp_path / "landing"))
    print(
        f"acknowledged {killed_with}, landed {sum(landed.values())} "
        f"({len(landed)} distinct), journal segments recovered {len(journals)}"
    )
    assert killed_with >= 2_000
    assert journals, "the kill should have caught a journal segment still open"
    missing = [event_id for event_id in acknowledged if event_id not in landed]
    assert missing == []
    assert max(landed.values()) == 1
