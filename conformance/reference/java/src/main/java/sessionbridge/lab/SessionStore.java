package sessionbridge.lab;

import io.grpc.Status;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;
import sessionbridge.lab.state.Incarnation;
import sessionbridge.lab.state.SessionRecord;

/**
 * The sessions of every lab service, keyed by service and {@code sb-session-id} so no state
 * is shared between sessions [S1]. With a state directory, each session is one file,
 * replaced atomically and fsynced before a message is answered [S9, S10].
 */
final class SessionStore {
  /** One session: its lock orders its messages one at a time, in arrival order [S6]. */
  static final class Session {
    final String service;
    final String id;
    /** Fair, so waiting messages are applied in the order they arrived [S6]. */
    final ReentrantLock lock = new ReentrantLock(true);
    /** Null until an Open created it (or after a failed Open). Guarded by lock. */
    SessionRecord record;
    /** Wall-clock time of the last message, for expiry across restarts [S12]. */
    volatile long lastActivityMs;

    Session(String service, String id) {
      this.service = service;
      this.id = id;
    }
  }

  private final Path sessionsDir;
  private final ConcurrentHashMap<String, Session> sessions = new ConcurrentHashMap<>();
  private final long incarnation;

  private SessionStore(Path sessionsDir, long incarnation) {
    this.sessionsDir = sessionsDir;
    this.incarnation = incarnation;
  }

  /** Opens the store; an empty state directory means memory only. */
  static SessionStore open(String stateDir) throws IOException {
    if (stateDir.isEmpty()) return new SessionStore(null, 1);
    Path root = Path.of(stateDir);
    Path dir = root.resolve("sessions");
    Files.createDirectories(dir);
    Path incFile = root.resolve("incarnation.pb");
    long previous = Files.exists(incFile) ? Incarnation.parseFrom(Files.readAllBytes(incFile)).getValue() : 0;
    long incarnation = previous + 1;
    writeAtomically(root, incFile, Incarnation.newBuilder().setValue(incarnation).build().toByteArray());
    SessionStore store = new SessionStore(dir, incarnation);
    try (Stream<Path> files = Files.list(dir)) {
      for (Path file : (Iterable<Path>) files::iterator) {
        String name = file.getFileName().toString();
        if (name.endsWith(".tmp")) {
          // A write that a kill -9 interrupted before its rename: never answered, so dropped.
          Files.deleteIfExists(file);
          continue;
        }
        if (!name.endsWith(".pb")) continue;
        SessionRecord record = SessionRecord.parseFrom(Files.readAllBytes(file));
        Session s = new Session(record.getService(), record.getSessionId());
        s.record = record;
        s.lastActivityMs = record.getLastActivityEpochMs();
        store.sessions.put(key(s.service, s.id), s);
      }
    }
    return store;
  }

  long incarnation() {
    return incarnation;
  }

  Session get(String service, String id) {
    return sessions.get(key(service, id));
  }

  Session getOrCreate(String service, String id) {
    return sessions.computeIfAbsent(key(service, id), k -> new Session(service, id));
  }

  Iterable<Session> all() {
    return sessions.values();
  }

  /** True when the service has a live session other than {@code exceptId} (SINGLE, S3). */
  boolean hasOtherLive(String service, String exceptId) {
    for (Session s : sessions.values()) {
      if (!s.service.equals(service) || s.id.equals(exceptId)) continue;
      s.lock.lock();
      try {
        if (s.record != null && s.record.getStatus() == SessionRecord.Status.STATUS_LIVE) return true;
      } finally {
        s.lock.unlock();
      }
    }
    return false;
  }

  /**
   * Makes {@code next} the session's state: durable first, then in memory, so a failed write
   * leaves the session as it was and the caller answers an error instead of a lost effect.
   */
  void commit(Session s, SessionRecord next) throws LabFault {
    if (sessionsDir != null) {
      try {
        writeAtomically(sessionsDir, sessionsDir.resolve(fileName(s.service, s.id)), next.toByteArray());
      } catch (IOException e) {
        throw LabFault.of(Status.Code.INTERNAL, "STORE_FAILURE", "state not written: " + e.getMessage());
      }
    }
    s.record = next;
  }

  private static void writeAtomically(Path dir, Path target, byte[] bytes) throws IOException {
    Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
    try (FileChannel ch =
        FileChannel.open(
            tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      ByteBuffer buf = ByteBuffer.wrap(bytes);
      while (buf.hasRemaining()) ch.write(buf);
      ch.force(true);
    }
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    // The rename itself must survive a crash too: fsync the directory.
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    }
  }

  private static String key(String service, String id) {
    return service + "\n" + id;
  }

  /** Session ids are arbitrary text: the file name is a digest of service and id. */
  private static String fileName(String service, String id) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      byte[] digest = sha.digest(key(service, id).getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(digest) + ".pb";
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
