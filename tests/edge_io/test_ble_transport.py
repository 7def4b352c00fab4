"""BLE transport (Nordic UART Service) through an injected fake bleak client."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from edge_io_support import (
    assert_accounted,
    assert_timeline_consistent,
    audio_of,
    device_framer,
    gaps_of,
    pump_until,
    ramp_audio,
)

from steth.edge.decode import StreamDecoder
from steth.edge.transports.base import Backoff, SourceError
from steth.edge.transports.ble import (
    NUS_RX_UUID,
    NUS_TX_UUID,
    BleTransport,
    describe_ble_error,
    normalise_allow_list,
)

ADDRESS = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"


@dataclass
class FakeDevice:
    address: str
    name: str = "STETH"


class FakeClient:
    """The parts of bleak.BleakClient the transport uses."""

    def __init__(self, device: FakeDevice, disconnected_callback: Callable, mtu: int) -> None:
        self.device = device
        self.mtu_size = mtu
        self._disconnected = disconnected_callback
        self.notify: Callable[[object, bytearray], None] | None = None
        self.writes: list[tuple[str, bytes]] = []
        self.connected = False

    async def connect(self) -> None:
        self.connected = True

    async def start_notify(self, uuid: str, callback) -> None:
        assert uuid == NUS_TX_UUID
        self.notify = callback

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = False) -> None:
        self.writes.append((uuid, bytes(data)))

    async def disconnect(self) -> None:
        self.connected = False

    def drop_link(self) -> None:
        self.connected = False
        self._disconnected(self)


class FakeBle:
    """Finder + client factory; remembers every client it made."""

    def __init__(self, found: FakeDevice | None, mtu: int = 247) -> None:
        self.found = found
        self.mtu = mtu
        self.clients: list[FakeClient] = []
        self.searches = 0

    async def find(self, target: str, allowed: frozenset[str], timeout: float):
        self.searches += 1
        return self.found

    def client(self, device: FakeDevice, disconnected_callback: Callable) -> FakeClient:
        client = FakeClient(device, disconnected_callback, self.mtu)
        self.clients.append(client)
        return client

    def wait_for_client(self, count: int = 1, timeout: float = 3.0) -> FakeClient:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.clients) >= count and self.clients[count - 1].notify is not None:
                return self.clients[count - 1]
            time.sleep(0.01)
        raise AssertionError("transport never subscribed to NUS notifications")


def open_ble(fake: FakeBle, messages: list[str], target: str = ADDRESS, allow=()) -> BleTransport:
    return BleTransport(
        target, allow, on_message=messages.append, backoff=Backoff(0.02, 0.05),
        find_device=fake.find, client_factory=fake.client,
    )  # fmt: skip


def notifications(data: bytes, size: int) -> list[bytes]:
    return [data[offset : offset + size] for offset in range(0, len(data), size)]


@pytest.mark.parametrize("mtu", [247, 23])
def test_mtu_sized_notifications_with_drops_are_decoded_and_losses_reported(mtu: int) -> None:
    fake, messages = FakeBle(FakeDevice(ADDRESS), mtu=mtu), []
    transport = open_ble(fake, messages)
    try:
        client = fake.wait_for_client()
        framer = device_framer()
        data = framer.start() + b"".join(framer.audio(ramp_audio(160 * 50)))
        pieces = notifications(data, mtu - 3)
        dropped = {len(pieces) // 3, 2 * len(pieces) // 3}
        for k, piece in enumerate(pieces):
            if k not in dropped:
                assert client.notify is not None
                client.notify(NUS_TX_UUID, bytearray(piece))
        decoder = StreamDecoder()
        items = pump_until(
            transport, decoder, lambda _: decoder.stats().bytes == len(data) - sum(
                len(pieces[k]) for k in dropped
            ),
        )  # fmt: skip
    finally:
        transport.close()
    stats = decoder.stats()
    gaps = gaps_of(items)
    assert 1 <= len(gaps) <= 4 and stats.crc_errors + stats.lost_frames >= 1
    received = sum(c.samples.size for c in audio_of(items))
    assert received + sum(g.lost_samples for g in gaps) == 160 * 50
    for chunk in audio_of(items):  # nothing invented: each chunk is the original audio
        assert np.array_equal(chunk.samples, ramp_audio(chunk.samples.size, chunk.start_index))
    assert_timeline_consistent(items)
    assert_accounted(stats)
    assert any(m.startswith("connected to BLE device") for m in messages)


def test_writes_are_split_to_the_mtu() -> None:
    fake, messages = FakeBle(FakeDevice(ADDRESS), mtu=23), []
    transport = open_ble(fake, messages)
    try:
        client = fake.wait_for_client()
        deadline = time.monotonic() + 2
        while not transport.status().connected and time.monotonic() < deadline:
            time.sleep(0.01)
        transport.write(bytes(range(50)))
    finally:
        transport.close()
    assert [len(d) for _, d in client.writes] == [20, 20, 10]
    assert all(uuid == NUS_RX_UUID for uuid, _ in client.writes)
    assert b"".join(d for _, d in client.writes) == bytes(range(50))


def test_lost_link_reconnects() -> None:
    fake, messages = FakeBle(FakeDevice(ADDRESS)), []
    transport = open_ble(fake, messages)
    try:
        fake.wait_for_client(1).drop_link()
        second = fake.wait_for_client(2)
        deadline = time.monotonic() + 2
        while transport.status().reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = transport.status()
        assert status.connected and status.reconnects == 1 and status.disconnects == 1
        assert any("lost BLE link" in m for m in messages)
        second.notify(NUS_TX_UUID, bytearray(b"abc"))  # type: ignore[misc]
        assert transport.read(1.0) == b"abc"
    finally:
        transport.close()


def test_device_not_found_is_reported_once_and_retried() -> None:
    fake, messages = FakeBle(None), []
    transport = open_ble(fake, messages)
    try:
        deadline = time.monotonic() + 2
        while fake.searches < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        transport.close()
    assert fake.searches >= 3 and not fake.clients
    assert len([m for m in messages if "not found" in m]) == 1


def test_a_device_outside_the_allow_list_is_never_connected() -> None:
    fake, messages = FakeBle(FakeDevice(OTHER)), []
    transport = open_ble(fake, messages, target="STETH", allow=[ADDRESS])
    try:
        deadline = time.monotonic() + 1
        while fake.searches < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        transport.close()
    assert not fake.clients and any("not on the allow-list" in m for m in messages)


def test_allow_list_rules() -> None:
    assert normalise_allow_list(ADDRESS.lower(), []) == {ADDRESS}
    assert normalise_allow_list("STETH", [ADDRESS, OTHER]) == {ADDRESS, OTHER}
    with pytest.raises(SourceError, match="--ble-allow"):
        normalise_allow_list("STETH", [])  # a name alone could match a neighbour's device
    with pytest.raises(SourceError, match="not on the --ble-allow list"):
        normalise_allow_list(ADDRESS, [OTHER])
    with pytest.raises(SourceError, match="addresses"):
        normalise_allow_list(ADDRESS, ["kitchen"])


def test_missing_bleak_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bleak", None)
    with pytest.raises(SourceError, match=r"pip install 'lungsound-steth\[ble\]'"):
        BleTransport(ADDRESS)


def test_stack_failures_name_the_fix() -> None:
    assert "systemctl start bluetooth" in describe_ble_error(ADDRESS, FileNotFoundError(2, "x"))
    assert "rfkill" in describe_ble_error(ADDRESS, RuntimeError("No Bluetooth adapters found."))
    assert "\n" not in describe_ble_error(ADDRESS, RuntimeError("a\nb"))
