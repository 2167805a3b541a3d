import { createHandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthService } from "#gen/vane/identity/v1/auth_service_pb.js";
import { clientAddress, requestContextValues, sourceOf } from "#lib/server/client-address.ts";

function ctx(peer: string | undefined, forwardedFor?: string) {
  return createHandlerContext({
    service: AuthService,
    method: AuthService.method.exchangeApiKey,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://identity/",
    requestHeader: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
    contextValues: requestContextValues({ socket: { remoteAddress: peer } }),
  });
}

describe("client address", () => {
  it("is the TCP peer unless proxies are trusted", () => {
    expect(clientAddress(ctx("::ffff:192.0.2.7", "203.0.113.9"), 0)).toBe("192.0.2.7");
    expect(clientAddress(ctx(undefined), 0)).toBe("unknown");
  });

  it("takes the X-Forwarded-For entry the trusted proxies appended, never one further left", () => {
    expect(clientAddress(ctx("10.1.1.1", "6.6.6.6, 203.0.113.9"), 1)).toBe("203.0.113.9");
    expect(clientAddress(ctx("10.1.1.1", "6.6.6.6, 203.0.113.9, 10.2.2.2"), 2)).toBe("203.0.113.9");
    expect(clientAddress(ctx("10.1.1.1", "[2001:db8::1]:443, 198.51.100.4:5000"), 2)).toBe("2001:db8::1");
    expect(clientAddress(ctx("10.1.1.1", "198.51.100.4:5000"), 1)).toBe("198.51.100.4");
    // Not through the proxies (too few entries), or garbage where the address should be: the peer.
    expect(clientAddress(ctx("10.1.1.1"), 1)).toBe("10.1.1.1");
    expect(clientAddress(ctx("10.1.1.1", "203.0.113.9"), 2)).toBe("10.1.1.1");
    expect(clientAddress(ctx("10.1.1.1", "not-an-address"), 1)).toBe("10.1.1.1");
  });

  it("groups IPv6 sources by /64", () => {
    expect(sourceOf("192.0.2.7")).toBe("192.0.2.7");
    expect(sourceOf("2001:db8:0:12:aaaa::1")).toBe("2001:db8:0:12::/64");
    expect(sourceOf("2001:db8:0:12:bbbb:cccc:dddd:eeee")).toBe("2001:db8:0:12::/64");
    expect(sourceOf("2001:db8::5")).toBe("2001:db8:0:0::/64");
    expect(sourceOf("::1")).toBe("0:0:0:0::/64");
  });
});
