"""Bluetooth LE link: Nordic UART Service (NUS) notifications via bleak, with an allow-list.

The device (an nRF52832 running Nordic's ``ble_app_uart``) forwards the firmware's protocol
bytes as NUS TX notifications, each at most MTU-3 bytes. Notifications are not frame
aligned; the decoder reassembles frames and reports whatever was lost.

Safety: connecting to the wrong patient's stethoscope must be impossible by accident, so a
device is only used when its address is on the allow-list. A name alone is not enough.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from steth.edge.transports.base import (
    Backoff,
    ByteQueue,
    MessageSink,
    SourceError,
    Transport,
    TransportStatus,
    print_to_stderr,
)

NUS_SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"  # host -> device (write)
NUS_TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"  # device -> host (notify)

_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$")

DeviceFinder = Callable[[str, frozenset[str], float], Awaitable[Any]]
ClientFactory = Callable[..., Any]


def is_ble_address(text: str) -> bool:
    """True for a MAC address (Linux/Windows) or a CoreBluetooth UUID (macOS)."""
    return bool(_ADDRESS.match(text))


def normalise_allow_list(target: str, allow: Sequence[str]) -> frozenset[str]:
    """Build the set of addresses this session may connect to.

    Parameters
    ----------
    target : str
        ``--ble`` value: a device name or an address.
    allow : sequence of str
        ``--ble-allow`` addresses.

    Returns
    -------
    frozenset of str
        Upper-case addresses.

    Raises
    ------
    SourceError
        When a name is given without an allow-list, when an allow-list entry is not an
        address, or when the target address is not on a given allow-list.
    """
    allowed = frozenset(address.strip().upper() for address in allow if address.strip())
    bad = sorted(address for address in allowed if not is_ble_address(address))
    if bad:
        raise SourceError(f"--ble-allow takes device addresses (AA:BB:CC:DD:EE:FF), not {bad[0]}")
    if is_ble_address(target):
        address = target.upper()
        if allowed and address not in allowed:
            raise SourceError(
                f"BLE device {target} is not on the --ble-allow list: add it or pick another"
            )
        return allowed | {address}
    if not allowed:
        raise SourceError(
            f"connecting to BLE device by name {target!r} needs --ble-allow ADDRESS "
            "(so a neighbouring stethoscope is never used)"
        )
    return allowed


def describe_ble_error(target: str, error: BaseException) -> str:
    """One line saying why the BLE link failed and what to do about it."""
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FileNotFoundError | ConnectionRefusedError):
        return (
            f"cannot reach the Bluetooth service for {target} ({detail}): start BlueZ "
            "(sudo systemctl start bluetooth); retrying"
        )
    if "adapter" in detail.lower():
        return (
            f"no usable Bluetooth adapter for {target} ({detail}): plug one in or unblock "
            "it (rfkill unblock bluetooth); retrying"
        )
    return f"BLE link to {target} failed ({detail}); retrying"


def _import_bleak() -> Any:
    try:
        import bleak
    except ImportError as error:
        raise SourceError(
            "BLE input needs the bleak package: pip install 'lungsound-steth[ble]'"
        ) from error
    return bleak


async def find_with_bleak(target: str, allowed: frozenset[str], timeout: float) -> Any:
    """Scan for an allowed device advertising NUS whose name or address is ``target``."""
    bleak = _import_bleak()

    def matches(device: Any, advertisement: Any) -> bool:
        if device.address.upper() not in allowed:
            return False
        if is_ble_address(target):
            return bool(device.address.upper() == target.upper())
        uuids = [uuid.lower() for uuid in (advertisement.service_uuids or [])]
        return bool(device.name == target and NUS_SERVICE_UUID in uuids)

    return await bleak.BleakScanner.find_device_by_filter(matches, timeout=timeout)


def bleak_client(device: Any, disconnected_callback: Callable[[Any], None]) -> Any:
    """Default client factory: a real ``bleak.BleakClient``."""
    return _import_bleak().BleakClient(device, disconnected_callback=disconnected_callback)


class BleTransport(Transport):
    """NUS over BLE with reconnect and an address allow-list.

    Parameters
    ----------
    target : str
        Device name or address (``--ble``).
    allow : sequence of str
        Allowed addresses (``--ble-allow``); see :func:`normalise_allow_list`.
    on_message : callable
        Receives one-line state changes (not found, connected, lost).
    backoff : Backoff, optional
        Reconnect schedule.
    find_device : callable, optional
        ``async (target, allowed, timeout) -> device | None``; bleak scanning by default.
    client_factory : callable, optional
        ``(device, disconnected_callback=...) -> client`` with bleak's client methods.
    scan_timeout : float
        Seconds per scan attempt.
    """

    def __init__(
        self,
        target: str,
        allow: Sequence[str] = (),
        *,
        on_message: MessageSink = print_to_stderr,
        backoff: Backoff | None = None,
        find_device: DeviceFinder | None = None,
        client_factory: ClientFactory | None = None,
        scan_timeout: float = 5.0,
    ) -> None:
        self.allowed = normalise_allow_list(target, allow)
        if find_device is None or client_factory is None:
            _import_bleak()  # Fail now with the pip hint, not later in a thread.
        self.target = target
        self.name = f"ble {target}"
        self._on_message = on_message
        self._backoff = backoff or Backoff(initial=1.0, maximum=8.0)
        self._find = find_device or find_with_bleak
        self._client_factory = client_factory or bleak_client
        self._scan_timeout = scan_timeout
        self._queue = ByteQueue()
        self._client: Any = None
        self._connected = False
        self._ever_connected = False
        self._last_error: str | None = None
        self._reconnects = 0
        self._disconnects = 0
        self._loop = asyncio.new_event_loop()
        self._stop = threading.Event()
        self._lost = asyncio.Event()
        self._thread = threading.Thread(target=self._run_loop, name="ble-transport", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> bytes:
        """Bytes from NUS notifications received so far (waits up to ``timeout`` s)."""
        return self._queue.get(timeout)

    def write(self, data: bytes) -> None:
        """Write to the NUS RX characteristic in MTU-sized pieces; dropped if disconnected."""
        if not self._connected or self._stop.is_set():
            return
        future = asyncio.run_coroutine_threadsafe(self._write(data), self._loop)
        try:
            future.result(timeout=5.0)
        except Exception as error:  # any BLE failure means the link is lost
            self._report(f"BLE write to {self.target} failed ({error}); reconnecting")

    def close(self) -> None:
        """Disconnect and stop the background loop."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._loop.call_soon_threadsafe(self._lost.set)
        self._thread.join(timeout=10.0)

    def status(self) -> TransportStatus:
        """Connection state and counters."""
        return TransportStatus(
            connected=self._connected,
            last_error=self._last_error,
            reconnects=self._reconnects,
            disconnects=self._disconnects,
            dropped_bytes=self._queue.dropped_bytes,
        )

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._connect_forever())
        finally:
            self._loop.close()

    async def _connect_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await self._one_session()
            except Exception as error:  # BLE stacks raise many types
                self._report(describe_ble_error(self.target, error))
            self._connected = False
            if self._stop.is_set():
                break
            await self._sleep_or_stop(self._backoff.failed())
        await self._disconnect_client()

    async def _one_session(self) -> None:
        device = await self._find(self.target, self.allowed, self._scan_timeout)
        if device is None:
            self._report(
                f"BLE device {self.target} not found among allowed addresses: switch it on "
                "and bring it in range; retrying"
            )
            return
        if str(device.address).upper() not in self.allowed:
            # Defence in depth: a custom finder must not bypass the allow-list either.
            self._report(f"BLE device {device.address} is not on the allow-list; ignoring it")
            return
        self._lost.clear()
        self._client = self._client_factory(device, disconnected_callback=self._on_disconnect)
        await self._client.connect()
        await self._client.start_notify(NUS_TX_UUID, self._on_notify)
        self._connected = True
        self._backoff.succeeded()
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        self._last_error = None
        self._on_message(f"connected to BLE device {device.address}")
        await self._lost.wait()
        if not self._stop.is_set():
            self._disconnects += 1
            self._report(f"lost BLE link to {self.target}: check range and battery; reconnecting")

    def _on_notify(self, _sender: Any, data: bytearray) -> None:
        self._queue.put(bytes(data))

    def _on_disconnect(self, _client: Any) -> None:
        self._connected = False
        self._loop.call_soon_threadsafe(self._lost.set)

    async def _write(self, data: bytes) -> None:
        mtu = int(getattr(self._client, "mtu_size", 23))
        chunk = max(20, mtu - 3)
        for offset in range(0, len(data), chunk):
            await self._client.write_gatt_char(
                NUS_RX_UUID, data[offset : offset + chunk], response=False
            )

    async def _disconnect_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except Exception:  # best effort on shutdown
                return

    async def _sleep_or_stop(self, seconds: float) -> None:
        end = self._loop.time() + seconds
        while not self._stop.is_set() and self._loop.time() < end:
            await asyncio.sleep(min(0.05, end - self._loop.time()))

    def _report(self, message: str) -> None:
        if message != self._last_error:
            self._on_message(message)
        self._last_error = message
