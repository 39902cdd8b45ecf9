import type { BridgeError, ErrorDetail } from "./bridge-error.js";
import { ERROR_DOMAIN, ERROR_INFO_TYPE_URL, encodeErrorInfo } from "./rich-status.js";

/**
 * The details a fault carries on the wire, the same on every transport (S14). A process's
 * own status goes out exactly as it came: its details unchanged, nothing added, so a
 * caller sees what a direct call would have shown. A fault the bridge raised carries a
 * google.rpc.ErrorInfo (domain sessionbridge.dev) with its reason and facts, first, unless
 * its details already hold one.
 */
export function wireDetails(error: BridgeError): readonly ErrorDetail[] {
  if (error.fromProcess) return error.details;
  if (error.details.some((d) => d.typeUrl === ERROR_INFO_TYPE_URL)) return error.details;
  return [
    encodeErrorInfo({ reason: error.reason, domain: ERROR_DOMAIN, metadata: error.metadata }),
    ...error.details,
  ];
}
