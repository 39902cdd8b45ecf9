/**
 * What an inbound adapter hands over about who is calling (S13). Adapters never decide
 * the principal themselves: they pass what their transport carried and the bridge
 * resolves it here, the same way for every transport.
 */
export interface Credentials {
  /** The token of an `Authorization: Bearer …` header (or its transport's equivalent). */
  readonly bearerToken?: string;
  /** The verified client certificate's subject, when the connection used mTLS. */
  readonly peerSubject?: string;
}

export const ANONYMOUS = "anonymous";

/** Turns credentials into the principal that owns sessions and reaches processes (S13). */
export interface PrincipalResolver {
  resolve(credentials: Credentials): string;
}

/**
 * The resolver while no authentication is configured: every caller is anonymous, and
 * whatever credentials it sent are left to travel on as ordinary metadata.
 */
export function anonymousPrincipals(): PrincipalResolver {
  return { resolve: () => ANONYMOUS };
}
