import http2 from "node:http2";

/**
 * The options of every outbound stream, with each field node:http2 would otherwise add
 * itself (weight, parent, exclusive, silent: HTTP/2's default priority, the values Node
 * fills in). Node copies the options (`{ ...options }`) and on V8 11 (Node 20) a field
 * added to such a copy gives that one object a hidden class of its own, which lives until
 * a full collection: about 400 B per call promoted, the old generation filled by call
 * objects (bench/results/profile-bridged-memory.md, "Hidden classes made per call").
 */
export const REQUEST_OPTIONS: http2.ClientSessionRequestOptions & { readonly silent: boolean } = {
  endStream: false,
  weight: http2.constants.NGHTTP2_DEFAULT_WEIGHT,
  parent: 0,
  exclusive: false,
  silent: false,
};
