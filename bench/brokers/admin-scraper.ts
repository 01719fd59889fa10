/**
 * The admin listener's load during a benchmark (BENCH_COURIER_ADMIN=1): like Prometheus, GET
 * /metrics every second; like an open dashboard, one live event stream (/api/v1/stream, one
 * sample a second) after logging in with the one-time token. Runs as its own process, started by
 * the Courier launcher, until it is killed.
 *
 * argv: adminPort token
 */
import { request } from 'node:http';

const port = Number(process.argv[2]);
const token = process.argv[3] ?? '';
const host = `127.0.0.1:${port}`;

function call(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const login = await call('POST', '/api/v1/login', { 'content-type': 'application/json', origin: `http://${host}` }, JSON.stringify({ token }));
if (login.status !== 200) {
  process.stderr.write(`admin-scraper: login failed (${login.status})\n`);
  process.exit(2);
}
const cookie = String(login.headers['set-cookie']).split(';')[0]!;
let samples = 0;
request({ host: '127.0.0.1', port, path: '/api/v1/stream', headers: { host, cookie } }, (res) => {
  res.setEncoding('utf8');
  res.on('data', (d: string) => (samples += (d.match(/^event: sample$/gm) ?? []).length));
}).end();
let scrapes = 0;
let bytes = 0;
setInterval(() => {
  call('GET', '/metrics', {}).then(
    (r) => {
      if (r.status === 200) {
        scrapes++;
        bytes = r.text.length;
      }
    },
    () => {},
  );
}, 1000);
process.on('SIGTERM', () => {
  process.stderr.write(`admin-scraper: ${scrapes} scrapes (${bytes} bytes each), ${samples} live samples\n`);
  process.exit(0);
});
process.stdout.write('SCRAPING\n');
