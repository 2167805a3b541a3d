/**
 * One TCP port for HTTP/2 cleartext (gRPC, h2c Connect) and HTTP/1.1 (Connect JSON, gRPC-Web,
 * browsers). Node 20's `http2.createServer` cannot fall back to HTTP/1.1 without TLS, so each
 * connection's first bytes are inspected: the HTTP/2 client preface goes to the HTTP/2 server,
 * anything else to the HTTP/1.1 server. The bytes read to decide are put back into the socket's
 * buffer, which both servers read first.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** A handler that serves both protocol versions. */
export type DualHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** The listener and the two protocol servers behind it. */
export interface DualListener {
  tcp: net.Server;
  h1: http.Server;
  h2: http2.Http2Server;
  /** HTTP/1.1 connections: Node tracks them only for servers that listen themselves. */
  h1Connections: Map<net.Socket, H1Connection>;
}

/** An HTTP/1.1 connection: the response in progress, or since when it has been idle. */
export interface H1Connection {
  response: http.ServerResponse | undefined;
  /** `performance.now()` when the last response finished (or the connection opened). */
  idleSince: number;
}

/**
 * Claims an HTTP/2 stream before Node builds its compatibility request/response objects for it:
 * returns true when it handled the stream.
 */
export type StreamClaim = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** Creates a TCP server that routes each connection to HTTP/2 or HTTP/1.1 by its preface. */
export function createDualListener(handler: DualHandler, claim?: StreamClaim): DualListener {
  const h1 = http.createServer(handler);
  // Keep-alive sockets idle longer than typical load balancers, so they close first.
  h1.keepAliveTimeout = 65_000;
  // No request listener: Node would then build compatibility objects for every stream. Streams
  // nobody claims get them here, as Node's own compatibility layer does.
  const h2 = http2.createServer({});
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    if (claim?.(stream, headers)) return;
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    handler(req, res);
  });
  const h1Connections = new Map<net.Socket, H1Connection>();
  h1.on("connection", (socket: net.Socket) => {
    h1Connections.set(socket, { response: undefined, idleSince: performance.now() });
    socket.once("close", () => h1Connections.delete(socket));
  });
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const connection = h1Connections.get(req.socket);
    if (!connection) return;
    connection.response = res;
    res.once("close", () => {
      if (connection.response !== res) return;
      connection.response = undefined;
      connection.idleSince = performance.now();
    });
  });
  const tcp = net.createServer((socket) => {
    socket.once("error", () => socket.destroy());
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, PREFACE.length);
      const isH2 = buffered.subarray(0, n).equals(PREFACE.subarray(0, n));
      // Wait for enough bytes to tell, unless they already diverge from the preface.
      if (isH2 && buffered.length < PREFACE.length) return;
      socket.off("data", onData);
      socket.pause();
      // Both servers take the bytes already read back from the socket's buffer: HTTP/1.1 reads
      // them as usual, and an HTTP/2 session feeds them to its native parser before reading the
      // socket's handle itself (Node does this for sockets with buffered data), so HTTP/2 keeps
      // its native I/O.
      socket.unshift(buffered);
      if (isH2) {
        socket.setNoDelay(true);
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
  return { tcp, h1, h2, h1Connections };
}
