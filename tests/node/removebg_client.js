// Runs the npm package "remove.bg" (unmodified, from tests/.node) once and prints what it
// resolved to as JSON. argv[2]: {"call": "File" | "Base64" | "Url", "options": {...}}.
"use strict";
const path = require("path");
const removebg = require(path.join(__dirname, "..", ".node", "node_modules", "remove.bg"));

const { call, options } = JSON.parse(process.argv[2]);
removebg[`removeBackgroundFromImage${call}`](options)
  .then((result) => {
    const { base64img, ...meta } = result;
    process.stdout.write(JSON.stringify({ ok: true, meta, bytes: Buffer.from(base64img, "base64").length }));
  })
  .catch((errors) => {
    process.stdout.write(JSON.stringify({ ok: false, errors }));
  });
