package sessionbridge.lab;

import io.grpc.BindableService;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;
import sessionbridge.conformance.v1.Harness.ServiceAddresses;
import sessionbridge.conformance.v1.Harness.ServiceSettings;

/**
 * The harness protocol (harness.proto): one size-delimited ServiceSettings on stdin, one
 * size-delimited ServiceAddresses on stdout, then serve until stdin closes or SIGTERM.
 */
public final class Main {
  /** Largest settings message accepted on stdin, checked before allocating. */
  private static final int MAX_SETTINGS_BYTES = 1 << 20;
  /** Large-payload cases send a few MiB; gRPC's default limit is 4 MiB. */
  private static final int MAX_MESSAGE_BYTES = 32 << 20;

  private Main() {}

  public static void main(String[] args) {
    try {
      run(args);
    } catch (Exception | Error e) {
      // Transport threads would keep a failed start alive without an answer: exit instead,
      // so the harness sees the failure at once.
      System.err.println("sb-lab-java: failed to start: " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  private static void run(String[] args) throws Exception {
    Deviation deviation = Deviation.NONE;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--break") && i + 1 < args.length) {
        deviation = Deviation.parse(args[++i]);
      } else {
        System.err.println("usage: sb-lab-java [--break never-expire|drop-metadata|ignore-deadlines]");
        System.exit(2);
      }
    }
    DataInputStream in = new DataInputStream(System.in);
    int length = in.readInt();
    if (length < 0 || length > MAX_SETTINGS_BYTES) {
      throw new IOException("ServiceSettings of " + length + " bytes refused");
    }
    byte[] bytes = new byte[length];
    in.readFully(bytes);
    ServiceSettings settings = ServiceSettings.parseFrom(bytes);

    SessionStore store = SessionStore.open(settings.getStateDir());
    LabEngine engine = new LabEngine(store, settings.getTimeScale(), deviation);
    SessionTurns turns = new SessionTurns();
    boolean grpc = settings.getTransportsList().isEmpty() || settings.getTransportsList().contains("grpc");
    Server server = null;
    ServiceAddresses.Builder addresses = ServiceAddresses.newBuilder();
    if (grpc) {
      NettyServerBuilder builder =
          NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
              // Handlers run on the connection's event loop in arrival order and only hand
              // their call to SessionTurns, which keeps that order per session [S6].
              .directExecutor()
              .maxInboundMessageSize(MAX_MESSAGE_BYTES);
      CallFactsInterceptor facts = new CallFactsInterceptor(deviation);
      for (BindableService service : LabServices.create(engine, turns)) {
        builder.addService(ServerInterceptors.intercept(service, facts));
      }
      server = builder.build().start();
      addresses.setGrpc("127.0.0.1:" + server.getPort());
    }
    ConnectServer http = null;
    if (settings.getTransportsList().isEmpty() || settings.getTransportsList().contains("http")) {
      http = ConnectServer.start(engine, turns, deviation);
      addresses.setHttp("http://127.0.0.1:" + http.port());
    }
    NatsTransport nats = null;
    // Empty transports mean every one served; NATS then needs a server to connect to.
    boolean wantNats =
        settings.getTransportsList().contains("nats")
            || (settings.getTransportsList().isEmpty() && !settings.getNatsUrl().isEmpty());
    if (wantNats) {
      if (settings.getNatsUrl().isEmpty()) throw new IOException("nats is asked for but ServiceSettings.nats_url is empty");
      String prefix = settings.getNatsSubjectPrefix().isEmpty() ? "lab" : settings.getNatsSubjectPrefix();
      nats = NatsTransport.start(settings.getNatsUrl(), prefix, engine, turns, deviation);
      addresses.setNats(prefix);
    }
    for (String t : settings.getTransportsList()) {
      if (!List.of("grpc", "http", "nats").contains(t)) System.err.println("sb-lab-java: transport " + t + " is not served");
    }

    final Server running = server;
    final ConnectServer connect = http;
    final NatsTransport natsTransport = nats;
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  engine.close();
                  if (natsTransport != null) natsTransport.close();
                  if (connect != null) connect.close();
                  if (running == null) return;
                  running.shutdown();
                  try {
                    if (!running.awaitTermination(2, TimeUnit.SECONDS)) running.shutdownNow();
                  } catch (InterruptedException e) {
                    running.shutdownNow();
                  }
                }));

    byte[] reply = addresses.build().toByteArray();
    DataOutputStream out = new DataOutputStream(new FileOutputStream(FileDescriptor.out));
    out.writeInt(reply.length);
    out.write(reply);
    out.flush();
    System.err.println(
        "sb-lab-java: serving " + addresses.build().toString().trim().replace('\n', ' ')
            + " incarnation " + store.incarnation()
            + (deviation == Deviation.NONE ? "" : " breaking " + deviation));

    // Serve until stdin closes (the runner went away) or SIGTERM (the shutdown hook).
    drain(in);
    System.exit(0);
  }

  private static void drain(InputStream in) {
    byte[] buf = new byte[4096];
    try {
      while (in.read(buf) >= 0) {
        // Anything after the settings is ignored.
      }
    } catch (IOException e) {
      // stdin gone: same as closed.
    }
  }
}
