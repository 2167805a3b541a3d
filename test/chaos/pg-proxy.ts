/**
 * A TCP proxy in front of Postgres that can fail the way networks do: `refuse` resets every open
 * connection and every new one (a database that is down); `blackhole` keeps sockets open but moves
 * no byte either way (a partition: callers wait until their own timeouts fire).
 */
import { createServer, type Server, type Socket, connect } from "node:net";

export type ProxyMode = "pass" | "refuse" | "blackhole";

export interface PgProxy {
  readonly port: number;
  readonly url: string;
  mode(): ProxyMode;
  setMode(mode: ProxyMode): void;
  close(): Promise<void>;
}

/** Proxies 127.0.0.1:<free port> to `target` (a postgres:// URL); the returned `url` is `target` through the proxy. */
export async function startPgProxy(target: string): Promise<PgProxy> {
  const upstream = new URL(target);
  const pairs = new Set<{ client: Socket; server: Socket }>();
  let current: ProxyMode = "pass";

  const flow = (p: { client: Socket; server: Socket }, on: boolean) => {
    if (on) {
      p.client.pipe(p.server);
      p.server.pipe(p.client);
    } else {
      // Unpiped sockets stop reading: bytes wait in the kernel's buffers, as in a partition
      // that heals (TCP retransmits), so nothing is lost or reordered when it ends.
      p.client.unpipe(p.server);
      p.server.unpipe(p.client);
      p.client.pause();
      p.server.pause();
    }
  };
  const server: Server = createServer((client) => {
    if (current === "refuse") return void client.resetAndDestroy();
    const pair = { client, server: connect(Number(upstream.port || 5432), upstream.hostname) };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      pair.client.destroy();
      pair.server.destroy();
    };
    for (const s of [pair.client, pair.server]) {
      s.on("error", end);
      s.on("close", end);
    }
    flow(pair, current === "pass");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);

  return {
    port,
    url: url.toString(),
    mode: () => current,
    setMode(mode) {
      const was = current;
      current = mode;
      if (mode === "refuse") for (const p of [...pairs]) p.client.resetAndDestroy();
      else if (mode !== was) for (const p of pairs) flow(p, mode === "pass");
    },
    async close() {
      for (const p of [...pairs]) p.client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
