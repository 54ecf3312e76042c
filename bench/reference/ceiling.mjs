// The framework ceiling of the reference: Node's own HTTP server answering every request with a
// fixed small JSON document, nothing else. The benchmark runs its discovery load against it on the
// same core as the provider: how fast this machine can answer HTTP at all from Node.
//
//   node ceiling.mjs --port N

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } }, strict: true });
const body = JSON.stringify({ issuer: 'http://127.0.0.1', status: 'ok' });
const server = http.createServer((req, res) => {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.end(body);
});
server.listen(Number(values.port), values.host ?? '127.0.0.1');
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
