// The greeter plugin in JavaScript: greet.v1.GreeterService on Node.js with connect-node,
// speaking plugin-di's plugin protocol (docs/internals.md): it checks the magic cookie,
// picks a protocol version, serves the HandshakeService and PluginControl beside its own
// service, and prints one handshake line on stdout when it is ready. Everything else it
// writes goes to stderr. Code generated into ./gen (see README.md).
import { timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { HandshakeResponseSchema, HandshakeService } from "./gen/connectplugin/v1/handshake_pb.js";
import { HealthState, PluginControl } from "./gen/connectplugin/v1/lifecycle_pb.js";
import { GreeterService } from "./gen/greet/v1/greet_pb.js";

const COOKIE_KEY = "CONNECT_PLUGIN";
const COOKIE_VALUE = "d3f40b3c2e1a5f8b9c4d7e6a1b2c3d4e";
const APP_VERSIONS = [1];
const PLUGIN = { name: "greet", version: "1.0.0" };
const SERVICE_PATH = "/greet.v1.GreeterService/";

function fail(message) {
  console.error(`greet (node): ${message}`);
  process.exit(1);
}

// 1. Launch: the cookie guards against running the wrong program; the host offers versions.
const cookie = process.env[COOKIE_KEY];
if (cookie !== undefined && cookie !== COOKIE_VALUE) {
  fail(`this is a plugin-di plugin: start it from an app (${COOKIE_KEY} does not match)`);
}
const offered = (process.env.PLUGIN_PROTOCOL_VERSIONS || "1").split(",").map(Number);
const appVersion = Math.max(...offered.filter((v) => APP_VERSIONS.includes(v)));
if (!Number.isFinite(appVersion)) {
  fail(`no common protocol version: host offers [${offered}], plugin speaks [${APP_VERSIONS}]`);
}

// A launcher sends its per-launch secret on every call to the plugin's own services.
const secret = process.env.PLUGIN_DI_REQUIRE_AUTH === "1" ? process.env.PLUGIN_DI_LAUNCH_SECRET : undefined;
function checkCaller(context) {
  if (secret === undefined) return;
  const sent = Buffer.from(context.requestHeader.get("authorization") || "");
  const expected = Buffer.from(`Bearer ${secret}`);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
    throw new ConnectError("missing or wrong launch secret", Code.Unauthenticated);
  }
}

// 2. The plugin's own service.
const greeter = {
  greet(request, context) {
    checkCaller(context);
    if (!request.name) throw new ConnectError("name cannot be empty", Code.InvalidArgument);
    return { greeting: `Hello, ${request.name}!`, servedBy: "node" };
  },
};

// 3. The plugin protocol: the handshake (public) and PluginControl (health, graceful stop).
const handshake = {
  handshake(request) {
    if (request.magicCookieKey !== COOKIE_KEY || request.magicCookieValue !== COOKIE_VALUE) {
      throw new ConnectError("invalid magic cookie - this may not be a connect-plugin server", Code.InvalidArgument);
    }
    if (request.coreProtocolVersion !== 1) {
      throw new ConnectError(`unsupported core protocol version: ${request.coreProtocolVersion}`, Code.InvalidArgument);
    }
    const asked = request.appProtocolVersions.length ? request.appProtocolVersions : [request.appProtocolVersion];
    const common = asked.filter((v) => APP_VERSIONS.includes(v));
    if (!common.length) {
      throw new ConnectError(`version mismatch: client speaks [${asked}], plugin speaks [${APP_VERSIONS}]`, Code.FailedPrecondition);
    }
    const unknown = request.requestedPlugins.filter((name) => name !== PLUGIN.name);
    if (unknown.length) {
      throw new ConnectError(`plugins not served: ${unknown} (served: ${PLUGIN.name})`, Code.NotFound);
    }
    return create(HandshakeResponseSchema, {
      coreProtocolVersion: 1,
      appProtocolVersion: Math.max(...common),
      serverMetadata: { server_version: "node-example" },
      plugins: [
        {
          ...PLUGIN,
          servicePath: SERVICE_PATH,
          provides: [{ type: "greeter", version: "1.0.0", path: SERVICE_PATH }],
        },
      ],
    });
  },
};

const control = {
  getHealth(_request, context) {
    checkCaller(context);
    return { state: HealthState.HEALTHY, reason: "" };
  },
  shutdown(request, context) {
    checkCaller(context);
    setTimeout(() => stop(Math.max(1, request.gracePeriodSeconds)), 10);
    return { acknowledged: true };
  },
};

const server = http.createServer(
  connectNodeAdapter({
    routes(router) {
      router.service(GreeterService, greeter);
      router.service(HandshakeService, handshake);
      router.service(PluginControl, control);
    },
  }),
);

function stop(graceSeconds) {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), graceSeconds * 1000).unref();
}
process.on("SIGTERM", () => stop(5));
process.on("SIGINT", () => stop(5));

// The host's death: end-of-file on the inherited parent pipe.
if (process.env.PLUGIN_DI_PARENT_PIPE_FD) {
  const pipe = new net.Socket({ fd: Number(process.env.PLUGIN_DI_PARENT_PIPE_FD), readable: true, writable: false });
  pipe.on("end", () => stop(1));
  pipe.on("error", () => stop(1));
  pipe.resume();
  pipe.unref();
}

// 4. Listen, then print the one handshake line: CORE|APP|NETWORK|ADDR|PROTOCOL|CERT.
const socketDir = process.env.PLUGIN_UNIX_SOCKET_DIR;
if (socketDir) {
  const socketPath = path.join(socketDir, `greet-node-${process.pid}.sock`);
  process.umask(0o177); // the socket is the launcher's alone (mode 0600)
  server.listen(socketPath, () => console.log(`1|${appVersion}|unix|${socketPath}|connect|`));
} else {
  server.listen(0, "127.0.0.1", () => {
    console.log(`1|${appVersion}|tcp|127.0.0.1:${server.address().port}|connect|`);
  });
}
