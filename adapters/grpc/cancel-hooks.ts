/**
 * A cheaper way for the outbound hop to hear that its inbound caller left than an "abort"
 * listener on the caller's AbortSignal.
 *
 * On Node 20 every AbortSignal gets a hidden class of its own (createAbortSignal changes
 * a fresh EventTarget's prototype), and a passthrough call that listened on its caller's
 * signal kept about 3.5 KB of both streams' objects alive through young-generation
 * collections until the next full one, even though the listener was removed when the call
 * ended: 5 KB of every call survived each scavenge instead of 1.2 KB, and was promoted
 * (bench/results/profile-bridged-memory.md, "Who survives a scavenge"). So the inbound
 * call that builds a signal (h2-server-call.ts) also attaches a plain list of callbacks to
 * it, and the outbound call (h2-call.ts) registers there when it finds one. The signal
 * still aborts as before for everyone else; the callbacks run just before it does.
 */
const HOOKS = Symbol("sessionbridge.cancelHooks");

type Hooked = AbortSignal & { [HOOKS]?: CancelHooks };

/** Callbacks run once when the call is cancelled; kept by the signal they were offered on. */
export class CancelHooks {
  #callbacks: (() => void)[] | undefined = [];

  /** Registers `callback`; returns what unregisters it (idempotent). */
  add(callback: () => void): () => void {
    this.#callbacks?.push(callback);
    return () => {
      const list = this.#callbacks;
      if (list === undefined) return;
      const at = list.indexOf(callback);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** Runs every callback once; later ones are never kept. */
  run(): void {
    const list = this.#callbacks;
    this.#callbacks = undefined;
    if (list !== undefined) for (const callback of list) callback();
  }
}

/** Attaches hooks to a signal its owner will run before aborting it. */
export function offerCancelHooks(signal: AbortSignal, hooks: CancelHooks): void {
  (signal as Hooked)[HOOKS] = hooks;
}

/**
 * Calls `callback` once when `signal` aborts (or its owner's hooks run first); returns what
 * stops listening. Signals without hooks get an ordinary "abort" listener.
 */
export function onCancel(signal: AbortSignal, callback: () => void): () => void {
  const hooks = (signal as Hooked)[HOOKS];
  if (hooks !== undefined) return hooks.add(callback);
  signal.addEventListener("abort", callback, { once: true });
  return () => signal.removeEventListener("abort", callback);
}
