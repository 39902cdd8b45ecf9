import type { ChildProcess } from "node:child_process";

/**
 * Every process the runner started (services, bridges, nats-server) and still runs. If
 * the runner itself exits, on an error or a signal, they are killed with it: a bridge
 * started with stdin ignored would otherwise outlive the run.
 */
const running = new Set<ChildProcess>();
let installed = false;

export function reapOnExit(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (installed) return;
  installed = true;
  process.once("exit", () => {
    for (const c of running) c.kill("SIGKILL");
  });
}
