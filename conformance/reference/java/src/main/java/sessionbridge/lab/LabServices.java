package sessionbridge.lab;

import com.google.protobuf.Message;
import io.grpc.BindableService;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import sessionbridge.conformance.v1.Lab.ActRequest;
import sessionbridge.conformance.v1.Lab.Instruction;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.LabItem;
import sessionbridge.conformance.v1.Lab.LabReply;
import sessionbridge.conformance.v1.Lab.OpenRequest;
import sessionbridge.conformance.v1.Lab.PostAck;
import sessionbridge.conformance.v1.LabServiceGrpc;
import sessionbridge.conformance.v1.PingLabServiceGrpc;
import sessionbridge.conformance.v1.SequentialLabServiceGrpc;
import sessionbridge.conformance.v1.SingleLabServiceGrpc;
import sessionbridge.lab.LabEngine.ItemSink;
import sessionbridge.lab.LabEngine.ItemsStart;
import sessionbridge.lab.LabEngine.Op;

/**
 * The four lab services over gRPC, each a thin shell over {@link LabEngine}.
 *
 * <p>The server runs with a direct executor, so these handlers run on the connection's event
 * loop in the order the calls arrived; each only hands its call to {@link SessionTurns},
 * which fixes the session's order there and does the work on a worker thread [S6].
 */
final class LabServices {
  /** How long a stream waits between checks of a slow reader's flow control. */
  private static final long READY_POLL_NANOS = 2_000_000;

  private LabServices() {}

  static List<BindableService> create(LabEngine engine, SessionTurns turns) {
    Shell shell = new Shell(engine, turns);
    return List.of(new Concurrent(shell), new Sequential(shell), new Single(shell), new Ping(shell));
  }

  /** What every handler does: hand the call over in arrival order, answer from a worker. */
  private record Shell(LabEngine engine, SessionTurns turns) {
    <T> void unary(StreamObserver<T> out, String service, Op op, Instruction ins) {
      try {
        turns.dispatch(
            Context.current(), service, CallFacts.current().sessionId, op == Op.PING, () -> answer(out, service, op, ins));
      } catch (LabFault f) {
        out.onError(f.toException());
      }
    }

    @SuppressWarnings("unchecked")
    private <T> void answer(StreamObserver<T> out, String service, Op op, Instruction ins) {
      try {
        Message m = engine.unary(service, op, ins);
        out.onNext((T) m);
        out.onCompleted();
      } catch (LabFault f) {
        out.onError(f.toException());
      } catch (RuntimeException e) {
        out.onError(Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
      }
    }

    void items(String service, ItemsRequest req, StreamObserver<LabItem> out) {
      ServerCallStreamObserver<LabItem> stream = (ServerCallStreamObserver<LabItem>) out;
      // A cancelled stream stops at its next item instead of failing on send (S15).
      stream.setOnCancelHandler(() -> {});
      ItemSink sink =
          new ItemSink() {
            @Override
            public boolean cancelled() {
              return stream.isCancelled();
            }

            @Override
            public void send(LabItem item) {
              // Flow control: a slow reader holds the stream, not the service's memory.
              while (!stream.isReady() && !stream.isCancelled() && !Context.current().isCancelled()) {
                LockSupport.parkNanos(READY_POLL_NANOS);
              }
              if (!stream.isCancelled()) stream.onNext(item);
            }
          };
      try {
        dispatchItems(service, req, stream, sink);
      } catch (LabFault f) {
        fail(stream, f.toException());
      }
    }

    private void dispatchItems(
        String service, ItemsRequest req, ServerCallStreamObserver<LabItem> stream, ItemSink sink) throws LabFault {
      turns.dispatch(
          Context.current(),
          service,
          CallFacts.current().sessionId,
          false,
          () -> {
            ItemsStart start;
            try {
              start = engine.startItems(service, req);
            } catch (LabFault f) {
              fail(stream, f.toException());
              return;
            } catch (RuntimeException e) {
              fail(stream, Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
              return;
            }
            // The stream applies nothing: it leaves the session's turn to the next message.
            turns.detach(
                Context.current(),
                () -> {
                  try {
                    engine.streamItems(start, sink);
                    if (!stream.isCancelled()) stream.onCompleted();
                  } catch (LabFault f) {
                    fail(stream, f.toException());
                  } catch (RuntimeException e) {
                    fail(stream, Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
                  }
                });
          });
    }

    private static void fail(ServerCallStreamObserver<LabItem> stream, RuntimeException error) {
      if (!stream.isCancelled()) stream.onError(error);
    }
  }

  static final class Concurrent extends LabServiceGrpc.LabServiceImplBase {
    static final String NAME = LabServiceGrpc.SERVICE_NAME;
    private final Shell shell;

    Concurrent(Shell shell) {
      this.shell = shell;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void peek(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.PEEK, req.getInstruction());
    }

    @Override
    public void post(ActRequest req, StreamObserver<PostAck> out) {
      shell.unary(out, NAME, Op.POST, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.FINISH, req.getInstruction());
    }

    @Override
    public void items(ItemsRequest req, StreamObserver<LabItem> out) {
      shell.items(NAME, req, out);
    }
  }

  static final class Sequential extends SequentialLabServiceGrpc.SequentialLabServiceImplBase {
    static final String NAME = SequentialLabServiceGrpc.SERVICE_NAME;
    private final Shell shell;

    Sequential(Shell shell) {
      this.shell = shell;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.FINISH, req.getInstruction());
    }
  }

  static final class Single extends SingleLabServiceGrpc.SingleLabServiceImplBase {
    static final String NAME = SingleLabServiceGrpc.SERVICE_NAME;
    private final Shell shell;

    Single(Shell shell) {
      this.shell = shell;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.FINISH, req.getInstruction());
    }
  }

  /** Sessionless: no session is resolved, the instruction runs against no log. */
  static final class Ping extends PingLabServiceGrpc.PingLabServiceImplBase {
    static final String NAME = PingLabServiceGrpc.SERVICE_NAME;
    private final Shell shell;

    Ping(Shell shell) {
      this.shell = shell;
    }

    @Override
    public void ping(ActRequest req, StreamObserver<LabReply> out) {
      shell.unary(out, NAME, Op.PING, req.getInstruction());
    }
  }
}
