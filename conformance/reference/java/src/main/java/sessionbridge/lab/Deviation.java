package sessionbridge.lab;

import java.util.Locale;

/**
 * The one rule a faulty build breaks on purpose, chosen with {@code --break <name>}. The
 * reference runs with {@link #NONE}; each deviation is checked at exactly one place so the
 * rest of the service stays the reference (conformance/faulty/java/README.md).
 */
public enum Deviation {
  NONE,
  /** Sessions never expire, whatever their idle time [S12]. */
  NEVER_EXPIRE,
  /** Custom request metadata is not observed and reply headers are not sent [S15]. */
  DROP_METADATA,
  /** Sleeps run to the end past the call's deadline, and their effect is applied [S15]. */
  IGNORE_DEADLINES;

  public static Deviation parse(String name) {
    return switch (name.toLowerCase(Locale.ROOT)) {
      case "never-expire" -> NEVER_EXPIRE;
      case "drop-metadata" -> DROP_METADATA;
      case "ignore-deadlines" -> IGNORE_DEADLINES;
      default -> throw new IllegalArgumentException(
          "unknown --break " + name + " (never-expire, drop-metadata, ignore-deadlines)");
    };
  }
}
