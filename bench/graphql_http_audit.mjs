// The GraphQL-over-HTTP audit of the `graphql-http` package against a running gateway:
//
//     node bench/graphql_http_audit.mjs URL [DIR]
//
// URL is the GraphQL endpoint (http://127.0.0.1:8000/graphql); DIR holds node_modules with
// graphql-http (bench/graphql_http_audit.py installs a pinned version outside the repo).
// Prints the MUST / SHOULD / MAY tallies and every audit that did not pass; exits 1 when a
// MUST or SHOULD audit failed. The audit sends its ~60 requests at once: run the gateway
// with a rate limit they do not trip, or the 429s count as failures.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [url, dir] = process.argv.slice(2);
if (!url) {
  console.error('usage: node bench/graphql_http_audit.mjs URL [DIR]');
  process.exit(2);
}
const require = createRequire(dir ? pathToFileURL(`${dir}/`) : import.meta.url);
const { auditServer } = require('graphql-http');
const { version } = require('graphql-http/package.json');

const results = await auditServer({ url });
const levels = ['MUST', 'SHOULD', 'MAY'];
const tally = Object.fromEntries(levels.map((level) => [level, { ok: 0, all: 0 }]));
const failed = [];
for (const result of results) {
  const level = result.name.split(' ')[0];
  tally[level].all += 1;
  if (result.status === 'ok') {
    tally[level].ok += 1;
  } else {
    failed.push(result);
  }
}
console.log(`graphql-http ${version} audit of ${url}`);
for (const level of levels) {
  console.log(`${level}: ${tally[level].ok}/${tally[level].all}`);
}
for (const result of failed) {
  const status = result.response ? ` (HTTP ${result.response.status})` : '';
  console.log(`  ${result.status} ${result.id} ${result.name}: ${result.reason}${status}`);
}
const required = tally.MUST.ok === tally.MUST.all && tally.SHOULD.ok === tally.SHOULD.all;
process.exit(required ? 0 : 1);
