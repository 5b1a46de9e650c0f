// The swap storm, as a process of its own (so its requests do not share an
// event loop with autocannon's): every given slot flips between its two
// staged versions, one activation after another, all slots at once, until
// the time is up. Prints { swaps, errors, p50Ms, p99Ms, seconds } on stdout.
//
//   node storm.mjs <socket> <durationMs> '<json: {slot: [v0, v1]}>' <active index>
import { Client } from './client.mjs';
import { nowMs, percentile } from './stats.mjs';

const [socket, durationMs, versionsJson, activeIndex] = process.argv.slice(2);
const versions = JSON.parse(versionsJson);
const client = new Client(socket, 128);
const deadline = nowMs() + Number(durationMs);
const times = [];
const errors = {};
const start = nowMs();

await Promise.all(
  Object.entries(versions).map(async ([slot, pair]) => {
    let k = Number(activeIndex) + 1;
    while (nowMs() < deadline) {
      const t0 = nowMs();
      const res = await client.request('POST', `/v1/maps/bench/outer/slots/${slot}/versions/${pair[k % 2]}/activate`);
      if (res.status === 200) {
        times.push(nowMs() - t0);
        k++;
      } else {
        errors[res.status] = (errors[res.status] ?? 0) + 1;
        if (res.status !== 429 && res.status !== 503) await new Promise((r) => setTimeout(r, 5));
      }
    }
  }),
);
client.close();
process.stdout.write(
  JSON.stringify({ swaps: times.length, errors, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), seconds: (nowMs() - start) / 1000 }) + '\n',
);
