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


def _call(context, method):
    remaining = context.time_remaining()
    # grpcio reports "no deadline" as None or as a practically infinite time left.
    timeout_ms = None if remaining is None or remaining > NO_DEADLINE_S else max(0.0, remaining * 1000.0)
    call = Call("grpc", method.operation, context.invocation_metadata(), timeout_ms)
    # Runs when the RPC ends for any reason: a cancelled or timed-out call stops waiting (S15).
    context.add_callback(call.cancel)
    return call


def _unary_handler(core, method):
    def handle(request, context):
        call = _call(context, method)
        instruction = request.instruction
        context.send_initial_metadata(_metadata(instruction.reply_headers))
        trailers = _metadata(instruction.reply_trailers)
        try:
            response = core.unary(call, request)
        except LabFault as fault:
            _abort(context, fault, trailers)
        context.set_trailing_metadata(trailers)
        return response

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=method.request_class.FromString, response_serializer=_serialize
    )


def _stream_handler(core, method):
    def handle(request, context):
        call = _call(context, method)
        try:
            yield from core.items(call, request)
        except LabFault as fault:
            _abort(context, fault, ())

    return grpc.unary_stream_rpc_method_handler(
        handle, request_deserializer=method.request_class.FromString, response_serializer=_serialize
    )


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
    by_service = collections.defaultdict(dict)
    for method in METHODS.values():
        handler = _stream_handler if method.server_streaming else _unary_handler
        by_service[method.service.full_name][method.name] = handler(core, method)
    for service, handlers in by_service.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
