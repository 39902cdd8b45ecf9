package sessionbridge.lab;

import com.google.protobuf.ListValue;
import com.google.protobuf.Message;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.zip.GZIPInputStream;
import sessionbridge.conformance.v1.Lab.Instruction;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.LabItem;
import sessionbridge.lab.LabEngine.ItemSink;
import sessionbridge.lab.LabEngine.ItemsStart;

/**
 * The lab services over HTTP/1.1 with the Connect protocol [S14, S15].
 *
 * <p>Unary: {@code POST /<package.Service>/<Method>} with {@code application/proto} or
 * {@code application/json}; the answer uses the same codec, reply trailers travel as
 * {@code Trailer-} headers. Server streaming ({@code LabService.Items}):
 * {@code application/connect+proto} or {@code +json}, enveloped messages, then the
 * end-of-stream message with the error, if any. Faults are Connect error JSON with the HTTP
 * status of DESIGN §3. The deadline is {@code Connect-Timeout-Ms}.
 *
 * <p>One event loop thread decodes every connection's requests, so calls are handed to
 * {@link SessionTurns} in the order they arrived [S6]; the work runs on worker threads. A
 * client that hangs up cancels its call, which is then abandoned like one past its
 * deadline [S15].
 */
final class ConnectServer implements AutoCloseable {
  /** Requests larger than this are refused (413) before they are buffered whole. */
  static final int MAX_REQUEST_BYTES = 64 << 20;
  /** Requests pipelined on one connection behind the one being answered; more closes it. */
  private static final int MAX_WAITING_PER_CONNECTION = 16;
  private static final int END_STREAM = 0x02;
  private static final int COMPRESSED = 0x01;
  private static final long WRITABLE_POLL_NANOS = 2_000_000;

  private static final Map<String, LabRoute> ROUTES = LabRoute.byOperation();

  private final EventLoopGroup group;
  private final Channel server;

  private ConnectServer(EventLoopGroup group, Channel server) {
    this.group = group;
    this.server = server;
  }

  /** Binds 127.0.0.1, port 0. */
  static ConnectServer start(LabEngine engine, SessionTurns turns, Deviation deviation) throws InterruptedException {
    // One thread: it accepts and decodes in arrival order; it never runs the lab's work.
    EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    Calls calls = new Calls(engine, turns, deviation, group);
    Channel server =
        new ServerBootstrap()
            .group(group)
            .channel(NioServerSocketChannel.class)
            .childHandler(
                new ChannelInitializer<SocketChannel>() {
                  @Override
                  protected void initChannel(SocketChannel ch) {
                    ch.pipeline()
                        .addLast(new HttpServerCodec())
                        .addLast(new HttpObjectAggregator(MAX_REQUEST_BYTES))
                        .addLast(new Connection(calls));
                  }
                })
            .bind(new InetSocketAddress("127.0.0.1", 0))
            .sync()
            .channel();
    return new ConnectServer(group, server);
  }

  int port() {
    return ((InetSocketAddress) server.localAddress()).getPort();
  }

  @Override
  public void close() {
    server.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    group.shutdownGracefully(0, 2, TimeUnit.SECONDS);
  }

  /** What every connection shares: the engine, the turns and the deadline timer. */
  private record Calls(LabEngine engine, SessionTurns turns, Deviation deviation, EventLoopGroup timer) {}

  /**
   * One HTTP/1.1 connection: answers its requests one at a time, in order (requests a client
   * pipelines on it wait, bounded), and cancels the call in progress when the client hangs up.
   */
  private static final class Connection extends SimpleChannelInboundHandler<FullHttpRequest> {
    private final Calls calls;
    private final ArrayDeque<FullHttpRequest> waiting = new ArrayDeque<>();
    private Exchange current;

    Connection(Calls calls) {
      super(false);
      this.calls = calls;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
      if (current == null) {
        begin(ctx, req);
        return;
      }
      if (waiting.size() >= MAX_WAITING_PER_CONNECTION) {
        req.release();
        ctx.close();
        return;
      }
      waiting.addLast(req);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      // The client hung up: its call is abandoned, nothing applied (S15).
      if (current != null) current.context.cancel(null);
      for (FullHttpRequest r : waiting) r.release();
      waiting.clear();
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }

    private void begin(ChannelHandlerContext ctx, FullHttpRequest req) {
      try {
        current = Exchange.start(calls, ctx, req, this::finished);
      } finally {
        req.release();
      }
    }

    /** Runs on the event loop once an exchange's answer is written. */
    private void finished(ChannelHandlerContext ctx, Exchange done) {
      if (current != done) return;
      current = null;
      FullHttpRequest next = waiting.pollFirst();
      if (next != null && ctx.channel().isActive()) begin(ctx, next);
      else if (next != null) next.release();
    }
  }

  private interface Finished {
    void finished(ChannelHandlerContext ctx, Exchange done);
  }

  /** One request and its answer. */
  private static final class Exchange {
    private static final int QUEUED = 0;
    private static final int RUNNING = 1;
    private static final int ANSWERED = 2;

    private final ChannelHandlerContext ctx;
    private final boolean keepAlive;
    private final Finished onFinished;
    private final AtomicInteger state = new AtomicInteger(QUEUED);
    private Context.CancellableContext context = Context.ROOT.withCancellation();
    private CallFacts facts;

    private Exchange(ChannelHandlerContext ctx, boolean keepAlive, Finished onFinished) {
      this.ctx = ctx;
      this.keepAlive = keepAlive;
      this.onFinished = onFinished;
    }

    /** Reads the request on the event loop and hands the call over in arrival order [S6]. */
    static Exchange start(Calls calls, ChannelHandlerContext ctx, FullHttpRequest req, Finished onFinished) {
      Exchange ex = new Exchange(ctx, HttpUtil.isKeepAlive(req), onFinished);
      String path = req.uri();
      int query = path.indexOf('?');
      if (query >= 0) path = path.substring(0, query);
      LabRoute route = ROUTES.get(path.startsWith("/") ? path.substring(1) : path);
      if (!req.method().equals(HttpMethod.POST)) {
        ex.plain(HttpResponseStatus.METHOD_NOT_ALLOWED, "only POST is served");
        return ex;
      }
      if (route == null) {
        ex.error(LabFault.of(Status.Code.UNIMPLEMENTED, "UNKNOWN_OPERATION", "no method " + path), "json");
        return ex;
      }
      String contentType = mediaType(req.headers().get(HttpHeaderNames.CONTENT_TYPE));
      String codec = codec(contentType, route.streaming());
      if (codec == null) {
        ex.plain(HttpResponseStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported content type " + contentType);
        return ex;
      }
      List<CallFacts.Header> headers = new ArrayList<>();
      for (Map.Entry<String, String> h : req.headers()) {
        headers.add(new CallFacts.Header(h.getKey().toLowerCase(Locale.ROOT), h.getValue()));
      }
      ex.facts = new CallFacts(path.substring(1), "http", headers, calls.deviation());
      Message request;
      try {
        Long timeoutMs = timeoutMs(req.headers().get("connect-timeout-ms"));
        Context base = Context.ROOT.withValue(CallFacts.KEY, ex.facts);
        ex.context =
            timeoutMs == null
                ? base.withCancellation()
                : base.withDeadline(Deadline.after(timeoutMs, TimeUnit.MILLISECONDS), calls.timer());
        request = decode(route, codec, req);
      } catch (LabFault f) {
        if (route.streaming()) ex.streamError(f, codec);
        else ex.error(f, codec);
        return ex;
      }
      // At the deadline (or when the client hangs up) a call still waiting for its turn is
      // answered at once and never runs (S15).
      ex.context.addListener(c -> ex.cancelledWhileQueued(codec), Runnable::run);
      boolean sessionless = route.sessionless();
      Runnable work =
          route.streaming()
              ? () -> ex.items(calls, route, (ItemsRequest) request, codec)
              : () -> ex.unary(calls, route, request, codec);
      try {
        calls.turns().dispatch(ex.context, route.service(), ex.facts.sessionId, sessionless, work);
      } catch (LabFault f) {
        // The session's queue is full: refused at once, unless its deadline answered it first.
        if (ex.state.compareAndSet(QUEUED, RUNNING)) {
          if (route.streaming()) ex.streamError(f, codec);
          else ex.error(f, codec);
        }
      }
      return ex;
    }

    private void cancelledWhileQueued(String codec) {
      if (!state.compareAndSet(QUEUED, ANSWERED)) return;
      Deadline d = context.getDeadline();
      if (d != null && d.isExpired() && ctx.channel().isActive()) {
        error(LabFault.of(Status.Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline passed; nothing applied"), codec);
      } else {
        done();
      }
    }

    private void unary(Calls calls, LabRoute route, Message request, String codec) {
      if (!state.compareAndSet(QUEUED, RUNNING)) return;
      Instruction ins = LabRoute.instruction(request);
      try {
        Message reply = calls.engine().unary(route.service(), route.op(), ins);
        byte[] body = encode(reply, codec);
        FullHttpResponse res =
            new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, Unpooled.wrappedBuffer(body));
        res.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/" + codec);
        replyHeaders(res.headers());
        write(res);
      } catch (LabFault f) {
        error(f, codec);
      } catch (RuntimeException e) {
        error(LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e)), codec);
      }
    }

    private void items(Calls calls, LabRoute route, ItemsRequest request, String codec) {
      if (!state.compareAndSet(QUEUED, RUNNING)) return;
      HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
      head.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/connect+" + codec);
      HttpUtil.setTransferEncodingChunked(head, true);
      ItemsStart start;
      try {
        start = calls.engine().startItems(route.service(), request);
      } catch (LabFault f) {
        ctx.writeAndFlush(head);
        endStream(f);
        return;
      } catch (RuntimeException e) {
        ctx.writeAndFlush(head);
        endStream(LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e)));
        return;
      }
      ctx.writeAndFlush(head);
      Channel channel = ctx.channel();
      ItemSink sink =
          new ItemSink() {
            @Override
            public boolean cancelled() {
              return !channel.isActive();
            }

            @Override
            public void send(LabItem item) {
              // Flow control: a slow reader holds the stream, not the service's memory.
              while (!channel.isWritable() && channel.isActive() && !context.isCancelled()) {
                LockSupport.parkNanos(WRITABLE_POLL_NANOS);
              }
              channel.writeAndFlush(new DefaultHttpContent(envelope(0, encode(item, codec))));
            }
          };
      // The stream applies nothing: it leaves the session's turn to the next message.
      calls
          .turns()
          .detach(
              context,
              () -> {
                try {
                  calls.engine().streamItems(start, sink);
                  endStream(null);
                } catch (LabFault f) {
                  endStream(f);
                } catch (RuntimeException e) {
                  endStream(LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e)));
                }
              });
    }

    /** The end-of-stream message: `{}`, or `{"error": …}` (Connect streaming). */
    private void endStream(LabFault f) {
      Struct.Builder end = Struct.newBuilder();
      if (f != null) end.putFields("error", Value.newBuilder().setStructValue(errorJson(f)).build());
      byte[] json = print(end.build()).getBytes(StandardCharsets.UTF_8);
      write(new DefaultLastHttpContent(envelope(END_STREAM, json)));
    }

    /** A stream that fails before it starts: 200, then only the end-of-stream message. */
    private void streamError(LabFault f, String codec) {
      state.set(RUNNING);
      HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
      head.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/connect+" + codec);
      HttpUtil.setTransferEncodingChunked(head, true);
      ctx.writeAndFlush(head);
      endStream(f);
    }

    /** A unary fault as Connect error JSON, with the reply headers asked for [S14, S15]. */
    private void error(LabFault f, String codec) {
      byte[] body = print(errorJson(f)).getBytes(StandardCharsets.UTF_8);
      FullHttpResponse res =
          new DefaultFullHttpResponse(
              HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(f.httpStatus()), Unpooled.wrappedBuffer(body));
      res.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json");
      replyHeaders(res.headers());
      write(res);
    }

    private void plain(HttpResponseStatus status, String text) {
      FullHttpResponse res =
          new DefaultFullHttpResponse(
              HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(text.getBytes(StandardCharsets.UTF_8)));
      res.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/plain");
      write(res);
    }

    /** Instruction.reply_headers as headers, reply_trailers with the Connect `Trailer-` prefix. */
    private void replyHeaders(HttpHeaders out) {
      if (facts == null) return;
      addAll(out, facts.replyHeaders(), "");
      addAll(out, facts.replyTrailers(), "trailer-");
    }

    private static void addAll(HttpHeaders out, Map<String, String> values, String prefix) {
      for (Map.Entry<String, String> e : values.entrySet()) {
        try {
          out.add(prefix + e.getKey(), e.getValue());
        } catch (IllegalArgumentException invalid) {
          // A header HTTP cannot carry is left out rather than failing the call.
        }
      }
    }

    /** Writes the last part of the answer; the connection then serves its next request. */
    private void write(Object last) {
      state.set(ANSWERED);
      if (last instanceof FullHttpResponse res) {
        HttpUtil.setContentLength(res, res.content().readableBytes());
        HttpUtil.setKeepAlive(res, keepAlive);
      }
      ctx.writeAndFlush(last)
          .addListener(
              (ChannelFutureListener)
                  f -> {
                    if (!keepAlive || !f.isSuccess()) f.channel().close();
                    done();
                  });
    }

    private void done() {
      // Releases the deadline timer; the call is answered, so its listener does nothing.
      context.cancel(null);
      // Always a later task of the event loop, also when the answer was written at once
      // from start(): the connection must know this exchange as its current one first.
      ctx.executor().execute(() -> onFinished.finished(ctx, this));
    }
  }

  private static String mediaType(String contentType) {
    if (contentType == null) return "";
    int semi = contentType.indexOf(';');
    return (semi >= 0 ? contentType.substring(0, semi) : contentType).trim().toLowerCase(Locale.ROOT);
  }

  /** "proto" or "json" for a content type the operation accepts, else null. */
  private static String codec(String mediaType, boolean streaming) {
    String prefix = streaming ? "application/connect+" : "application/";
    if (!mediaType.startsWith(prefix)) return null;
    String codec = mediaType.substring(prefix.length());
    return codec.equals("proto") || codec.equals("json") ? codec : null;
  }

  private static Long timeoutMs(String text) throws LabFault {
    if (text == null) return null;
    if (text.isEmpty() || text.length() > 10 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
      throw LabFault.of(
          Status.Code.INVALID_ARGUMENT, "INVALID_TIMEOUT", "Connect-Timeout-Ms must be 1-10 digits, got " + text);
    }
    return Long.parseLong(text);
  }

  private static Message decode(LabRoute route, String codec, FullHttpRequest req) throws LabFault {
    ByteBuf content = req.content();
    byte[] data;
    if (route.streaming()) {
      // One enveloped message: flags, 4-byte big-endian length, the message.
      if (content.readableBytes() < 5 || content.getUnsignedInt(content.readerIndex() + 1) != content.readableBytes() - 5) {
        throw LabFault.of(Status.Code.INVALID_ARGUMENT, "MALFORMED_MESSAGE", "a streaming request is one enveloped message");
      }
      int flags = content.getUnsignedByte(content.readerIndex());
      data = new byte[content.readableBytes() - 5];
      content.getBytes(content.readerIndex() + 5, data);
      if ((flags & COMPRESSED) != 0) data = gunzip(data);
    } else {
      data = new byte[content.readableBytes()];
      content.getBytes(content.readerIndex(), data);
      String encoding = req.headers().get(HttpHeaderNames.CONTENT_ENCODING, "identity");
      if (encoding.equalsIgnoreCase("gzip")) data = gunzip(data);
      else if (!encoding.equalsIgnoreCase("identity")) {
        throw LabFault.of(Status.Code.UNIMPLEMENTED, "UNSUPPORTED_ENCODING", "Content-Encoding " + encoding);
      }
    }
    return route.decode(data, codec.equals("json"));
  }

  private static byte[] gunzip(byte[] data) throws LabFault {
    try (InputStream in = new GZIPInputStream(new ByteBufInputStream(Unpooled.wrappedBuffer(data), true))) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buf = new byte[8192];
      for (int n; (n = in.read(buf)) > 0; ) {
        // Bounded: a small body must not inflate into unbounded memory.
        if (out.size() + n > MAX_REQUEST_BYTES) {
          throw LabFault.of(Status.Code.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE", "the request is too large once decompressed");
        }
        out.write(buf, 0, n);
      }
      return out.toByteArray();
    } catch (IOException e) {
      throw LabFault.of(Status.Code.INVALID_ARGUMENT, "MALFORMED_MESSAGE", "bad gzip body: " + e.getMessage());
    }
  }

  private static byte[] encode(Message m, String codec) {
    if (codec.equals("json")) return print(m).getBytes(StandardCharsets.UTF_8);
    return m.toByteArray();
  }

  private static String print(com.google.protobuf.MessageOrBuilder m) {
    return LabRoute.json(m);
  }

  /** The Connect error form: code, message, and every detail, the ErrorInfo reason first. */
  private static Struct errorJson(LabFault f) {
    com.google.rpc.Status status = f.status();
    Struct.Builder b =
        Struct.newBuilder()
            .putFields("code", Value.newBuilder().setStringValue(f.connectCode()).build())
            .putFields("message", Value.newBuilder().setStringValue(status.getMessage()).build());
    if (status.getDetailsCount() > 0) {
      ListValue.Builder details = ListValue.newBuilder();
      for (com.google.protobuf.Any d : status.getDetailsList()) {
        String url = d.getTypeUrl();
        Struct detail =
            Struct.newBuilder()
                .putFields("type", Value.newBuilder().setStringValue(url.substring(url.lastIndexOf('/') + 1)).build())
                .putFields(
                    "value",
                    Value.newBuilder()
                        .setStringValue(Base64.getEncoder().withoutPadding().encodeToString(d.getValue().toByteArray()))
                        .build())
                .build();
        details.addValues(Value.newBuilder().setStructValue(detail).build());
      }
      b.putFields("details", Value.newBuilder().setListValue(details).build());
    }
    return b.build();
  }

  private static ByteBuf envelope(int flags, byte[] data) {
    ByteBuf buf = Unpooled.buffer(5 + data.length);
    buf.writeByte(flags);
    buf.writeInt(data.length);
    buf.writeBytes(data);
    return buf;
  }
}
