// Validate one Adaptive Card with Microsoft's own renderer (npm `adaptivecards`, pinned in
// package.json), in plain Node: card JSON on stdin, {"errors": [...]} on stdout.
// Exit 0 when valid, 1 when the renderer reports problems, 2 on bad input.
"use strict";
const AC = require("adaptivecards/dist/adaptivecards.js");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  let json;
  try {
    json = JSON.parse(input);
  } catch (e) {
    process.stdout.write(JSON.stringify({ errors: [{ phase: "input", message: "not JSON: " + e.message }] }));
    process.exit(2);
  }
  const errors = [];
  const ctx = new AC.SerializationContext();
  const card = new AC.AdaptiveCard();
  try {
    card.parse(json, ctx);
  } catch (e) {
    errors.push({ phase: "parse", message: String(e && e.message || e) });
  }
  for (let i = 0; i < ctx.eventCount; i++) {
    const ev = ctx.getEventAt(i);
    errors.push({ phase: "parse", event: AC.ValidationEvent[ev.event], message: ev.message });
  }
  const results = card.validateProperties();
  for (const issue of results.validationEvents) {
    errors.push({ phase: "validate", event: AC.ValidationEvent[issue.event], message: issue.message });
  }
  process.stdout.write(JSON.stringify({ errors }));
  process.exit(errors.length ? 1 : 0);
});
