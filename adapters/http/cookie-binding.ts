import { type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import type { CookieBinding } from "../../bridge/config/config.js";
import type { ContractSet, OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * Cookie mapping, as Jolie's HTTP protocol maps cookies to message fields: a cookie bound
 * to `session` resumes the session it names (S1) when the request names none; a cookie
 * bound to a correlation variable fills that alias field when the request leaves it
 * empty (S2, S5). Successful answers set the cookies (HttpOnly, SameSite=Lax, Secure when
 * the listener uses TLS), so a browser carries its session without script.
 */
export interface CookieRules {
  /** The request with the bound cookies applied. */
  apply(
    op: OperationContract,
    metadata: Metadata,
    cookieHeader: string | undefined,
    payload: Uint8Array,
  ): { metadata: Metadata; payload: Uint8Array };
  /** Set-Cookie values for a successful answer. */
  setCookies(op: OperationContract, sessionId: string | undefined, payload: Uint8Array): string[];
}

export function createCookieRules(
  bindings: readonly CookieBinding[],
  contracts: ContractSet,
  options: { readonly secure: boolean },
): CookieRules | undefined {
  if (bindings.length === 0) return undefined;
  const variables = new Set<string>();
  for (const op of contracts.operations.values()) {
    for (const alias of op.correlation?.aliases ?? []) {
      if (alias.steps.length === 1 && alias.family === "string") variables.add(alias.variable);
    }
  }
  for (const b of bindings) {
    if (b.bind !== "session" && !variables.has(b.bind)) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_CONFIG,
        `listeners.httpCookies: ${b.name} binds ${b.bind}, which is no top-level string correlation variable of the contracts`,
      );
    }
  }
  const attributes = `; Path=/; HttpOnly; SameSite=Lax${options.secure ? "; Secure" : ""}`;
  const aliasOf = (op: OperationContract, variable: string) =>
    op.correlation?.aliases.find(
      (a) => a.variable === variable && a.steps.length === 1 && a.family === "string",
    );
  const schemaOf = (op: OperationContract): DescMessage | undefined =>
    contracts.registry.getMessage(op.requestType);
  const fieldValue = (schema: DescMessage, message: Record<string, unknown>, number: number) => {
    const field = schema.fields.find((f) => f.number === number);
    return field === undefined ? undefined : { field, value: message[field.localName] };
  };
  return {
    apply(op, metadata, cookieHeader, payload) {
      if (cookieHeader === undefined) return { metadata, payload };
      const cookies = parseCookies(cookieHeader);
      let out = metadata;
      let body = payload;
      for (const b of bindings) {
        const value = cookies.get(b.name);
        if (value === undefined || value === "") continue;
        if (b.bind === "session") {
          // A starter opens its own session; the cookie resumes, it never redirects a start.
          if (!op.startsSession && out[Header.sessionId] === undefined)
            out = { ...out, [Header.sessionId]: [value] };
          continue;
        }
        const alias = aliasOf(op, b.bind);
        const schema = schemaOf(op);
        if (alias === undefined || schema === undefined) continue;
        const message = fromBinary(schema, body) as unknown as Record<string, unknown>;
        const found = fieldValue(schema, message, alias.steps[0]?.number ?? 0);
        if (found === undefined || found.value !== "") continue;
        message[found.field.localName] = value;
        body = toBinary(schema, message as never);
      }
      return { metadata: out, payload: body };
    },
    setCookies(op, sessionId, payload) {
      const out: string[] = [];
      for (const b of bindings) {
        if (b.bind === "session") {
          if (sessionId !== undefined) out.push(`${b.name}=${encodeURIComponent(sessionId)}${attributes}`);
          continue;
        }
        const alias = aliasOf(op, b.bind);
        const schema = schemaOf(op);
        if (alias === undefined || schema === undefined) continue;
        const message = fromBinary(schema, payload) as unknown as Record<string, unknown>;
        const found = fieldValue(schema, message, alias.steps[0]?.number ?? 0);
        if (typeof found?.value === "string" && found.value !== "") {
          out.push(`${b.name}=${encodeURIComponent(found.value)}${attributes}`);
        }
      }
      return out;
    },
  };
}

/** name=value pairs of a Cookie header (RFC 6265 §5.4); values percent-decoded. */
function parseCookies(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of header.slice(0, 8192).split(";")) {
    const at = part.indexOf("=");
    if (at <= 0) continue;
    const name = part.slice(0, at).trim();
    const raw = part
      .slice(at + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    try {
      if (!out.has(name)) out.set(name, decodeURIComponent(raw));
    } catch {
      // A malformed escape: the cookie is ignored, as browsers ignore what they cannot read.
    }
  }
  return out;
}
