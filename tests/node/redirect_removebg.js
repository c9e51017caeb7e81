// Preloaded (node --require) by tests/test_removebg_clients.py. A remove.bg client library keeps
// its endpoint, https://api.remove.bg/v1.0/removebg, in a module-private constant that nothing
// outside can set; so its HTTPS requests to api.remove.bg are sent, one layer below it, to the
// bgclear server in BGCLEAR_REMOVEBG_BASE (plain HTTP). The library's own code runs unmodified.
"use strict";
const http = require("http");
const https = require("https");

const REMOVEBG_HOST = "api.remove.bg";
const target = new URL(process.env.BGCLEAR_REMOVEBG_BASE);
const TLS_ONLY = ["agent", "ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername", "ciphers",
  "secureProtocol", "secureOptions", "checkServerIdentity", "_defaultAgent"];

function splitArgs(args) {
  // https.request(url[, options][, callback]) or https.request(options[, callback])
  const [first, second, third] = args;
  if (typeof first === "string" || first instanceof URL) {
    const url = new URL(first);
    const extra = typeof second === "function" ? {} : second || {};
    const callback = typeof second === "function" ? second : third;
    const options = { hostname: url.hostname, port: url.port, path: url.pathname + url.search, ...extra };
    return [options, callback];
  }
  return [{ ...first }, second];
}

function redirected(original) {
  return function (...args) {
    const [options, callback] = splitArgs(args);
    const host = options.hostname || String(options.host || "").split(":")[0];
    if (host !== REMOVEBG_HOST) return original.apply(this, args);
    for (const name of TLS_ONLY) delete options[name];
    Object.assign(options, { protocol: "http:", hostname: target.hostname, host: target.hostname, port: target.port });
    process.stderr.write(`redirected ${(options.method || "GET").toUpperCase()} https://${REMOVEBG_HOST}${options.path} -> ${target.origin}\n`);
    return http.request(options, callback);
  };
}

https.request = redirected(https.request);
https.get = function (...args) {
  const req = https.request(...args);
  req.end();
  return req;
};
