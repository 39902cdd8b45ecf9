"""The lab services over gRPC (grpcio): rich status for faults, headers and trailers (S14, S15)."""

import collections
from concurrent import futures

import grpc

from call import Call
from faults import LabFault
from lab_core import METHODS

# Large-payload cases send more than grpcio's 4 MiB default; bounded all the same.
MAX_MESSAGE_BYTES = 64 << 20
# Sleeping calls hold a thread each; many-sessions cases run that many at once.
MAX_WORKERS = 128
# Anything beyond ten years is no deadline at all.
NO_DEADLINE_S = 10 * 365 * 24 * 3600


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def _metadata(pairs):
    """Instruction.reply_headers / reply_trailers as gRPC metadata (lower-case keys)."""
    out = []
    for name, value in sorted(pairs.items()):
        name = name.lower()
        out.append((name, value.encode("utf-8") if name.endswith("-bin") else value))
    return tuple(out)


def _abort(context, fault, trailers):
    """Answers the fault as a gRPC rich status: grpc-status-details-bin holds the
    google.rpc.Status with the ErrorInfo reason and the details (S14)."""
    status = fault.to_status()
    code = next(c for c in grpc.StatusCode if c.value[0] == fault.code)
    context.abort_with_status(
        _Status(code, fault.message, trailers + (("grpc-status-details-bin", status.SerializeToString()),))
    )


def _start(call, context):
    remaining = context.time_remaining()
    # grpcio reports "no deadline" as None or as a practically infinite time left.
    call.set_timeout(None if remaining is None or remaining > NO_DEADLINE_S else max(0.0, remaining * 1000.0))
    # Runs when the RPC ends for any reason: a cancelled or timed-out call stops waiting (S15).
    context.add_callback(call.cancel)


class _LabHandlers(grpc.GenericRpcHandler):
    """Finds the handler of each call as it arrives.

    grpcio asks for the handler on its one serving thread, in the order its C-core hands
    calls over, and only then hands the call to a worker thread. The session turn is taken
    here, so pipelined calls of one session keep that order (S6).

    That order is the order of arrival on the connection while the service keeps up; it
    is not under a burst: with hundreds of calls pipelined at once on one HTTP/2
    connection (HEADERS frames in stream order), a call now and then reaches this point
    before calls that arrived earlier (seen in about one session in fifteen with 3
    sessions x 150 calls). grpcio exposes no stream id to restore the order from, so
    pipelining over gRPC keeps arrival order only for bursts the C-core does not queue.
    """

    def __init__(self, core):
        self._core = core

    def service(self, handler_call_details):
        method = METHODS.get(handler_call_details.method.lstrip("/"))
        if method is None:
            return None
        call = Call("grpc", method.operation, handler_call_details.invocation_metadata)
        if not method.server_streaming:
            # Provisional: grpcio may still drop the call before it runs (turns.py).
            self._core.arrive(call, provisional=True)

        def deserialize(data):
            try:
                return method.request_class.FromString(data)
            except Exception:
                self._core.release(call)
                raise

        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(call), request_deserializer=deserialize, response_serializer=_serialize
            )
        return grpc.unary_unary_rpc_method_handler(
            self._unary(call), request_deserializer=deserialize, response_serializer=_serialize
        )

    def _unary(self, call):
        def handle(request, context):
            _start(call, context)
            instruction = request.instruction
            context.send_initial_metadata(_metadata(instruction.reply_headers))
            trailers = _metadata(instruction.reply_trailers)
            try:
                response = self._core.unary(call, request)
            except LabFault as fault:
                _abort(context, fault, trailers)
            finally:
                self._core.release(call)
            context.set_trailing_metadata(trailers)
            return response

        return handle

    def _stream(self, call):
        def handle(request, context):
            _start(call, context)
            try:
                yield from self._core.items(call, request)
            except LabFault as fault:
                _abort(context, fault, ())

        return handle


def _serialize(message):
    return message.SerializeToString()


def serve_grpc(core):
    """Starts the gRPC server on 127.0.0.1, port 0; returns (server, 'host:port')."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="lab-grpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    server.add_generic_rpc_handlers((_LabHandlers(core),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
