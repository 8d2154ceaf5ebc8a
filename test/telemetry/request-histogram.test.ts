import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { RequestHistogram } from '../../src/telemetry/request-histogram.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
// On bounds, between them, below the first and above the last.
const OBSERVATIONS: [string, string, string, number][] = [
  ['GET', '/a', '200', 0.0005],
  ['GET', '/a', '200', 0.001],
  ['GET', '/a', '200', 0.05],
  ['GET', '/a', '200', 7],
  ['POST', '/b', '400', 0.01],
  ['POST', '/b', '400', 0.2],
];

/** The same observations in prom-client's own Histogram and in ours, each in its own registry. */
function both(): { theirs: Registry; ours: Registry; histogram: RequestHistogram } {
  const theirs = new Registry();
  const ours = new Registry();
  const options = {
    name: 'h_seconds',
    help: 'latency',
    labelNames: ['method', 'route', 'status_code'],
    buckets: BUCKETS,
  };
  const reference = new Histogram({ ...options, registers: [theirs] });
  const histogram = new RequestHistogram({ ...options, registers: [ours] });
  for (const [method, route, status, value] of OBSERVATIONS) {
    reference.observe({ method, route, status_code: status }, value);
    histogram.series(method, route, status).observe(value);
  }
  return { theirs, ours, histogram };
}

/** The exposition's sample lines, sorted (series order is creation order in both). */
function samples(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .sort();
}

describe('RequestHistogram', () => {
  it('exports what prom-client’s Histogram exports for the same observations', async () => {
    const { theirs, ours } = both();
    const expected = await theirs.metrics();
    const actual = await ours.metrics();
    assert.deepEqual(samples(actual), samples(expected));
    assert.equal(actual.split('\n').slice(0, 2).join('\n'), expected.split('\n').slice(0, 2).join('\n'));
    assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
  });

  it('counts cumulatively per bound, with +Inf, sum and count', async () => {
    const { ours, histogram } = both();
    histogram.series('GET', '/a', '500').observe(Number.NaN);
    const text = await ours.metrics();
    const value = (line: string) =>
      Number(
        samples(text)
          .find((row) => row.startsWith(`${line} `))
          ?.split(' ')[1],
      );
    const a = 'method="GET",route="/a",status_code="200"';
    assert.equal(value(`h_seconds_bucket{le="0.001",${a}}`), 2);
    assert.equal(value(`h_seconds_bucket{le="0.01",${a}}`), 2);
    assert.equal(value(`h_seconds_bucket{le="0.1",${a}}`), 3);
    assert.equal(value(`h_seconds_bucket{le="1",${a}}`), 3);
    assert.equal(value(`h_seconds_bucket{le="+Inf",${a}}`), 4);
    assert.equal(value(`h_seconds_count{${a}}`), 4);
    assert.equal(value(`h_seconds_sum{${a}}`), 0.0005 + 0.001 + 0.05 + 7);
    // A series handed out but given only a non-number is exported, at zero.
    assert.equal(value('h_seconds_count{method="GET",route="/a",status_code="500"}'), 0);
  });

  it('keeps recording into handed-out series after a reset', async () => {
    const registry = new Registry();
    const histogram = new RequestHistogram({
      name: 'r_seconds',
      help: 'latency',
      labelNames: ['route'],
      buckets: BUCKETS,
      registers: [registry],
    });
    const series = histogram.series('/x');
    series.observe(0.5);
    registry.resetMetrics();
    series.observe(0.005);
    const text = await registry.metrics();
    assert.ok(text.includes('r_seconds_count{route="/x"} 1\n'));
    assert.ok(text.includes('r_seconds_bucket{le="0.001",route="/x"} 0\n'));
    assert.ok(text.includes('r_seconds_bucket{le="0.01",route="/x"} 1\n'));
    assert.throws(() => histogram.series('/x', 'extra'), /takes 1 label values/);
  });
});
