"""The Python reference service of the sessionbridge conformance suite.

Run: .tools/conformance/python/venv/bin/python conformance/reference/python/lab_service.py
(after conformance/reference/python/build.sh). It speaks the harness protocol of
proto/sessionbridge/conformance/v1/harness.proto:

1. read one ServiceSettings from stdin (4-byte big-endian length, then the message);
2. serve the four lab services on every transport asked for, on 127.0.0.1 port 0;
3. write one ServiceAddresses to stdout the same way;
4. serve until stdin closes or SIGTERM.

The session rules live in lab_core.py; each transport (grpc_transport.py,
http_transport.py, nats_transport.py) only turns its wire form into a `Call` and back.
"""

import os
import signal
import struct
import sys
import threading

# The generated code (build.sh writes it under .tools) and this folder's modules.
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path[:0] = [os.path.join(ROOT, ".tools", "conformance", "python", "gen"), HERE]

from sessionbridge.conformance.v1 import harness_pb2  # noqa: E402

from lab_core import LabCore  # noqa: E402
from lab_store import LabStore  # noqa: E402

TRANSPORTS = ("grpc", "http", "nats")
# A settings message is small; anything larger is not one.
MAX_SETTINGS_BYTES = 1 << 20


def read_settings(stream):
    header = stream.read(4)
    if len(header) != 4:
        raise SystemExit("no ServiceSettings on stdin")
    (length,) = struct.unpack(">I", header)
    if length > MAX_SETTINGS_BYTES:
        raise SystemExit(f"ServiceSettings of {length} bytes is too large")
    data = stream.read(length)
    if len(data) != length:
        raise SystemExit("stdin closed inside ServiceSettings")
    return harness_pb2.ServiceSettings.FromString(data)


def write_addresses(stream, addresses):
    data = addresses.SerializeToString()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def serve(settings, core_class=LabCore):
    """Starts every transport asked for; returns (ServiceAddresses, stop function)."""
    wanted = list(settings.transports) or list(TRANSPORTS)
    unknown = set(wanted) - set(TRANSPORTS)
    if unknown:
        raise SystemExit(f"unknown transports: {sorted(unknown)}")
    store = LabStore(settings.state_dir or os.path.join(os.getcwd(), ".lab-state"))
    core = core_class(store, settings.time_scale or 1.0)
    addresses = harness_pb2.ServiceAddresses()
    stops = []
    if "grpc" in wanted:
        from grpc_transport import serve_grpc

        server, addresses.grpc = serve_grpc(core)
        stops.append(lambda: server.stop(grace=1).wait())
    if "http" in wanted:
        from http_transport import serve_http

        http_server, addresses.http = serve_http(core)
        stops.append(http_server.shutdown)
    if "nats" in wanted:
        from nats_transport import NatsTransport

        if not settings.nats_url:
            raise SystemExit("nats is asked for but ServiceSettings.nats_url is empty")
        nats_transport = NatsTransport(core, settings.nats_url, settings.nats_subject_prefix or "lab")
        addresses.nats = nats_transport.start()
        stops.append(nats_transport.stop)

    def stop():
        for step in stops:
            step()
        core.close()
        store.close()

    return addresses, stop


def main(core_class=LabCore):
    settings = read_settings(sys.stdin.buffer)
    addresses, stop = serve(settings, core_class)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def wait_for_stdin_close():
        while sys.stdin.buffer.read(4096):
            pass
        done.set()

    threading.Thread(target=wait_for_stdin_close, name="lab-stdin", daemon=True).start()
    write_addresses(sys.stdout.buffer, addresses)
    print(f"lab service ready: {addresses}".replace("\n", " "), file=sys.stderr)
    try:
        while not done.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    stop()


if __name__ == "__main__":
    main()
