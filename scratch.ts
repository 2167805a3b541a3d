import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthService, WhoAmIResponseSchema } from "#gen/vane/identity/v1/auth_service_pb.js";
import { createHealthRegistry } from "#lib/health.ts";
import { createServer, serve } from "#lib/server.ts";
import { createLogger } from "#lib/logger.ts";
const server = createServer({ port: 0, host: "127.0.0.1", logger: createLogger({level:"info"}), health: createHealthRegistry({ cacheMs: 0 }), services: [serve(AuthService, {
  whoAmI() { return create(WhoAmIResponseSchema, {}); },
  exchangeApiKey(req) { console.log("got", JSON.stringify(req.apiKey)); throw new Error("boom postgres://u:secret@h/db"); },
  exchangeOidcToken() { throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }); },
})]});
const port = await server.listen();
const url = (m: string) => `http://127.0.0.1:${port}/vane.identity.v1.AuthService/${m}`;
for (const body of [Buffer.from('{"\xff\xfeapiKey":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}', "latin1"), Buffer.from('{"apiKey":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}')]) {
  const r = await fetch(url("ExchangeApiKey"), { method: "POST", headers: { "content-type": "application/json" }, body });
  console.log(r.status, await r.text());
}
let r = await fetch(url("ExchangeApiKey"), { method: "POST", headers: { "content-type": "application/proto" }, body: Buffer.from([0x0a, 0x02, 0xff, 0xfe]) });
console.log(r.status, await r.text());
r = await fetch(url("ExchangeApiKey"), { method: "POST", headers: { "content-type": "application/proto" }, body: Buffer.from([0x0a, 0x12, 0xff, 0xfe]) });
console.log(r.status, await r.text());
r = await fetch(url("ExchangeOidcToken"), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
console.log(r.status, await r.text());
r = await fetch(url("ExchangeApiKey"), { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: Buffer.from([0, 0,0,0,4, 0x0a, 0x02, 0xff, 0xfe]) });
console.log(r.status, Buffer.from(await r.arrayBuffer()).toString("latin1"));
await server.close();
