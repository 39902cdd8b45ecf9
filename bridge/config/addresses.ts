import { isIPv4, isIPv6 } from "node:net";
import { expectedGot } from "./config-error.js";

export interface HostPort {
  /** Host name or IP address; an IPv6 address without its brackets. */
  readonly host: string;
  readonly port: number;
}

const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** The form parseHostPort accepts, for error messages. */
export function hostPortForm(minPort: number): string {
  return `host:port with port ${minPort}-65535, IPv6 in brackets`;
}

/**
 * Parses "host:port": a host name, an IPv4 address or a bracketed IPv6 address
 * ("[::1]:50051"), and a decimal port from minPort to 65535. Returns what is wrong
 * ("invalid port") instead when it is not one.
 */
export function parseHostPort(text: string, minPort = 0): HostPort | { readonly problem: string } {
  const bracketed = /^\[([^\]]+)\]:([^:]*)$/.exec(text);
  const match = bracketed ?? /^([^:[\]]*):([^:]*)$/.exec(text);
  if (match === null) {
    const ipv6 = isIPv6(text) || isIPv6(text.replace(/:\d+$/, ""));
    return { problem: ipv6 ? "IPv6 address not in brackets" : "not a host:port address" };
  }
  const [, host = "", portText = ""] = match;
  const validHost =
    bracketed !== null ? isIPv6(host) : isIPv4(host) || (HOSTNAME.test(host) && !/^[\d.]+$/.test(host));
  if (!validHost) return { problem: "invalid host" };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= minPort && port <= 65535)) return { problem: "invalid port" };
  return { host, port };
}

/** A message for an invalid listener address, undefined when it is valid (port 0 picks a free port). */
export function checkListenAddress(text: string): string | undefined {
  const parsed = parseHostPort(text, 0);
  return "problem" in parsed ? expectedGot(parsed.problem, hostPortForm(0), text) : undefined;
}

/** The HTTP listener's address, or `off` for none. */
export function checkHttpListen(text: string): string | undefined {
  return text === "off" ? undefined : checkListenAddress(text);
}

/** A location scheme a process may be reached by; each outbound adapter adds its own. */
export interface LocationScheme {
  /** The accepted form, for error messages: "grpc://host:port". */
  readonly form: string;
  /** Checks what follows "scheme://"; returns what is wrong, undefined when valid. */
  check(rest: string): string | undefined;
}

/** A NATS subject of literal tokens: no wildcards, no empty tokens. */
const NATS_SUBJECT = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/** The accepted location schemes (Jolie-style locations). */
export const LOCATION_SCHEMES: Readonly<Record<string, LocationScheme>> = {
  grpc: {
    form: "grpc://host:port",
    check(rest) {
      const parsed = parseHostPort(rest, 1);
      return "problem" in parsed ? parsed.problem : undefined;
    },
  },
  // Connect protocol to an HTTP server (adapters/http): an optional path prefix, and
  // ?codec=json for handlers that speak only JSON.
  http: {
    form: "http://host:port[/prefix][?codec=json|proto]",
    check(rest) {
      const match = /^([^/?#]*)(\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?codec=(?:json|proto))?$/.exec(rest);
      if (match === null) return "not host:port, an optional /prefix and an optional ?codec=json|proto";
      const parsed = parseHostPort(match[1] ?? "", 1);
      return "problem" in parsed ? parsed.problem : undefined;
    },
  },
  // NATS requests on <prefix>.<Method> (adapters/nats), with ?codec=json for processes
  // that speak only JSON, as docs/nats.md describes.
  nats: {
    form: "nats://subject.prefix",
    check(rest) {
      const match = /^([^?]*)(\?codec=(?:json|proto))?$/.exec(rest);
      return match !== null && NATS_SUBJECT.test(match[1] ?? "") ? undefined : "invalid subject prefix";
    },
  },
};

/** True for a NATS subject token sequence without wildcards ("sb", "orders.v1"). */
export function isNatsSubject(text: string): boolean {
  return NATS_SUBJECT.test(text);
}

/** A message for an invalid process location, undefined when it is valid. */
export function checkLocation(text: string): string | undefined {
  const forms = Object.values(LOCATION_SCHEMES)
    .map((scheme) => scheme.form)
    .join(" or ");
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(text);
  if (match === null) return expectedGot("not a location URL", forms, text);
  const [, name = "", rest = ""] = match;
  const scheme = Object.hasOwn(LOCATION_SCHEMES, name) ? LOCATION_SCHEMES[name] : undefined;
  if (scheme === undefined) return expectedGot(`unsupported location scheme ${name}`, forms, text);
  const problem = scheme.check(rest);
  return problem === undefined ? undefined : expectedGot(problem, scheme.form, text);
}
