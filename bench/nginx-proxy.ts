import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Peer } from "./bench-processes.js";

/** The nginx binary, installed from Debian when missing; a reason when neither works. */
function findNginx(): string | { readonly skipped: string } {
  const which = (): string | undefined => {
    for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) {
      try {
        execFileSync(candidate, ["-v"], { stdio: "ignore" });
        return candidate;
      } catch {
        // not here
      }
    }
    return undefined;
  };
  const found = which();
  if (found !== undefined) return found;
  try {
    process.stderr.write("bench: nginx missing, installing nginx-light from Debian\n");
    execFileSync("apt-get", ["install", "-y", "nginx-light"], { stdio: "ignore", timeout: 300_000 });
  } catch (error) {
    return { skipped: `nginx is not installed and apt-get could not install it (${String(error)})` };
  }
  return which() ?? { skipped: "nginx is not installed and apt-get did not provide it" };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > until) throw new Error(`nginx did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * nginx `grpc_pass` in front of the echo server: the peer a bridge is compared with. One
 * process (master_process off), so its CPU and RSS are one pid's, like the bridge's single
 * event loop; upstream connections are kept alive. Listens on 127.0.0.1 only.
 */
export async function startNginx(upstream: string): Promise<Peer | { readonly skipped: string }> {
  const binary = findNginx();
  if (typeof binary !== "string") return binary;
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-bench-nginx-"));
  const port = await freePort();
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Long-lived client connections, as a gRPC client keeps them (the default closes after 1000 calls).
  keepalive_requests 4294967295;
  keepalive_timeout 3600s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream echo {
    server ${upstream};
    keepalive 128;
    keepalive_requests 4294967295;
  }
  server {
    listen 127.0.0.1:${port} http2;
    http2_max_concurrent_streams 1024;
    location / {
      grpc_pass grpc://echo;
    }
  }
}
`,
  );
  const child = spawn(binary, ["-p", dir, "-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.on("exit", () => child.kill("SIGKILL"));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    await waitForPort(port, 10_000);
  } catch (error) {
    child.kill("SIGKILL");
    let log = "";
    try {
      log = readFileSync(path.join(dir, "error.log"), "utf8");
    } catch {
      // no log written
    }
    cleanup();
    return { skipped: `nginx did not start: ${String(error)} ${stderr} ${log}`.trim() };
  }
  const pid = child.pid as number;
  return {
    pid,
    address: `127.0.0.1:${port}`,
    stop: async () => {
      child.kill("SIGQUIT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      cleanup();
    },
  };
}
