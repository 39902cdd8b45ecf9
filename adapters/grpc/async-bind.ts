import { AsyncResource } from "node:async_hooks";
import { deprecate } from "node:util";

/**
 * Node's AsyncResource#bind, without the two util.deprecate wrappers it builds per call.
 *
 * Node 20's ClientHttp2Session#request (lib/internal/http2/core.js) wraps every new
 * stream's connect step in `new AsyncResource("PendingRequest").bind(…)`, and bind()
 * defines the deprecated `asyncResource` accessor (DEP0172) on each bound function with a
 * getter and a setter that are each a fresh util.deprecate() wrapper: two closures, two
 * warning emitters and two setPrototypeOf calls for every outbound gRPC call, about 3 KB of
 * garbage and several percent of the bridge's CPU under load (bench/README.md, "Profiling").
 * There is no option that skips it, so the bridge's outbound hot path (DESIGN §6) installs
 * this equivalent once: the bound function runs `fn` in the resource's async scope with
 * the same `this`, arguments and `length`, and still carries an enumerable `asyncResource`
 * accessor that warns with DEP0172 and reads or replaces the resource, as Node's does;
 * only the accessor functions are shared rather than made per call.
 *
 * Installed only where bind() still defines that accessor: a Node that dropped it (the
 * property is headed for end-of-life) keeps its own bind().
 */
export function installLeanAsyncBind(): void {
  const proto = AsyncResource.prototype as unknown as Record<string | symbol, unknown>;
  if (proto[INSTALLED] === true) return;
  const original = AsyncResource.prototype.bind as (
    this: AsyncResource,
    fn: unknown,
    thisArg?: unknown,
  ) => unknown;
  const probe = new AsyncResource("sessionbridge-probe").bind(() => undefined);
  const accessor = Object.getOwnPropertyDescriptor(probe, "asyncResource");
  if (accessor?.get === undefined) return;
  const readResource = deprecate(
    function (this: Bound) {
      return this[RESOURCE];
    },
    "The asyncResource property on bound functions is deprecated",
    "DEP0172",
  );
  const replaceResource = deprecate(
    function (this: Bound, value: unknown) {
      this[RESOURCE] = value;
    },
    "The asyncResource property on bound functions is deprecated",
    "DEP0172",
  );
  const properties = (fn: (...args: never[]) => unknown): PropertyDescriptorMap => ({
    length: { configurable: true, enumerable: false, value: fn.length, writable: false },
    asyncResource: { configurable: true, enumerable: true, get: readResource, set: replaceResource },
  });
  function bind<F extends (...args: never[]) => unknown>(this: AsyncResource, fn: F, thisArg?: unknown): F {
    // Anything but a function gets Node's own validation error.
    if (typeof fn !== "function") return original.call(this, fn, thisArg) as F;
    const resource = this;
    const run = fn as unknown as (...a: unknown[]) => unknown;
    let bound: Bound;
    if (thisArg === undefined) {
      bound = function (this: unknown, ...args: unknown[]) {
        return resource.runInAsyncScope(run, this, ...args);
      } as unknown as Bound;
    } else {
      bound = resource.runInAsyncScope.bind(resource, run, thisArg) as Bound;
    }
    bound[RESOURCE] = resource;
    Object.defineProperties(bound, properties(fn));
    return bound as unknown as F;
  }
  AsyncResource.prototype.bind = bind as typeof AsyncResource.prototype.bind;
  Object.defineProperty(AsyncResource.prototype, INSTALLED, { value: true });
}

const RESOURCE = Symbol("sessionbridge.asyncResource");
const INSTALLED = Symbol.for("sessionbridge.leanAsyncBind");

type Bound = ((...args: unknown[]) => unknown) & { [RESOURCE]: unknown };
