package sessionbridge.lab;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import io.grpc.BindableService;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import sessionbridge.conformance.v1.LabServiceGrpc;
import sessionbridge.conformance.v1.Lab.ActRequest;
import sessionbridge.conformance.v1.Lab.Instruction;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.LabItem;
import sessionbridge.conformance.v1.Lab.LabReply;
import sessionbridge.conformance.v1.Lab.OpenRequest;
import sessionbridge.conformance.v1.Lab.PostAck;
import sessionbridge.conformance.v1.SequentialLabServiceGrpc;
import sessionbridge.conformance.v1.SingleLabServiceGrpc;
import sessionbridge.lab.LabEngine.Op;

/** The three lab services over gRPC, each a thin shell over {@link LabEngine}. */
final class LabServices {
  /** Largest stream item the service builds, so one request cannot exhaust its memory. */
  static final int MAX_ITEM_BYTES = 4 << 20;

  private LabServices() {}

  static List<BindableService> create(LabEngine engine) {
    return List.of(new Concurrent(engine), new Sequential(engine), new Single(engine));
  }

  @SuppressWarnings("unchecked")
  static <T> void answer(StreamObserver<T> out, LabEngine engine, String service, Op op, Instruction ins) {
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

  static final class Concurrent extends LabServiceGrpc.LabServiceImplBase {
    static final String NAME = LabServiceGrpc.SERVICE_NAME;
    private final LabEngine engine;

    Concurrent(LabEngine engine) {
      this.engine = engine;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void peek(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.PEEK, req.getInstruction());
    }

    @Override
    public void post(ActRequest req, StreamObserver<PostAck> out) {
      answer(out, engine, NAME, Op.POST, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.FINISH, req.getInstruction());
    }

    @Override
    public void ping(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.PING, req.getInstruction());
    }

    @Override
    public void items(ItemsRequest req, StreamObserver<LabItem> out) {
      ServerCallStreamObserver<LabItem> stream = (ServerCallStreamObserver<LabItem>) out;
      try {
        CallFacts facts = CallFacts.current();
        long remainingMs = LabEngine.remainingMs();
        if (req.getItemBytes() > MAX_ITEM_BYTES) {
          throw LabFault.of(
              Status.Code.INVALID_ARGUMENT, "INVALID_REQUEST", "item_bytes above " + MAX_ITEM_BYTES);
        }
        int delivery = engine.countDelivery(facts.messageId);
        engine.checkItems(NAME, facts);
        ByteString payload = ByteString.copyFrom(new byte[req.getItemBytes()]);
        for (int i = 0; i < req.getCount(); i++) {
          if (i > 0) engine.sleep(req.getIntervalMs());
          engine.abandonIfDone();
          if (stream.isCancelled()) return;
          LabItem.Builder item = LabItem.newBuilder().setIndex(i).setPayload(payload);
          if (req.getObserve()) item.setObserved(engine.observed(facts, remainingMs, delivery));
          out.onNext(item.build());
        }
        if (req.hasFail()) {
          Instruction failing = Instruction.newBuilder().setFail(req.getFail()).build();
          engine.unaryFault(failing.getFail());
        }
        out.onCompleted();
      } catch (LabFault f) {
        if (!stream.isCancelled()) out.onError(f.toException());
      } catch (RuntimeException e) {
        if (!stream.isCancelled()) out.onError(Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
      }
    }
  }

  static final class Sequential extends SequentialLabServiceGrpc.SequentialLabServiceImplBase {
    static final String NAME = SequentialLabServiceGrpc.SERVICE_NAME;
    private final LabEngine engine;

    Sequential(LabEngine engine) {
      this.engine = engine;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.FINISH, req.getInstruction());
    }
  }

  static final class Single extends SingleLabServiceGrpc.SingleLabServiceImplBase {
    static final String NAME = SingleLabServiceGrpc.SERVICE_NAME;
    private final LabEngine engine;

    Single(LabEngine engine) {
      this.engine = engine;
    }

    @Override
    public void open(OpenRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.OPEN, req.getInstruction());
    }

    @Override
    public void act(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.ACT, req.getInstruction());
    }

    @Override
    public void finish(ActRequest req, StreamObserver<LabReply> out) {
      answer(out, engine, NAME, Op.FINISH, req.getInstruction());
    }
  }
}
