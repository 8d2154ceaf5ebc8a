#!/usr/bin/env node
// Checks that every metric the Grafana dashboard queries is one tessera exports.
//
//   node docker/check-dashboard.mjs http://localhost:3000/metrics   # a running tessera (sends METRICS_TOKEN if set)
//   node docker/check-dashboard.mjs metrics.txt                     # a saved scrape
//   curl -s localhost:3000/metrics | node docker/check-dashboard.mjs -
//   ... --dashboard other.json                                      # another dashboard file
//
// A metric "exists" when the scrape declares it (`# TYPE`), even with no sample
// yet (a labelled counter has none until first incremented); histograms and
// summaries also provide their _bucket/_sum/_count series. `up` is Prometheus's
// own. Label names in selectors (`{status_code=~"5.."}`) are checked against the
// metric's samples when the scrape has some. Exits 0 when every name is known, 1 (listing the unknown ones) otherwise.
// test/docker/dashboard.test.ts runs it against the real app's /metrics.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_DASHBOARD = join(dirname(fileURLToPath(import.meta.url)), 'grafana', 'dashboards', 'tessera.json');

/** Series Prometheus adds itself to every scrape target. */
const SYNTHETIC = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_series_added']);

/** PromQL words that look like metric names but are not. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/** Metric names selected by one PromQL expression (Grafana variables allowed). */
export function metricNames(expr) {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ') // Grafana variables ($__range, ${job})
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' '); // label lists
  const names = new Set();
  for (const match of text.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const [word] = match;
    const before = text[match.index - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // 1e3, 5m
    const after = text.slice(match.index + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function call
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return names;
}

/** Every PromQL expression of a dashboard: panel queries (rows included) and query variables. */
export function dashboardQueries(dashboard) {
  const queries = [];
  const visit = (panels = []) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string' && target.expr.trim()) {
          queries.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
        }
      }
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const definition = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    const series = /^\s*label_values\(\s*(.+),\s*[a-zA-Z_]\w*\s*\)\s*$/.exec(definition ?? '');
    const expr = series ? series[1] : /^\s*query_result\((.*)\)\s*$/.exec(definition ?? '')?.[1];
    if (expr) queries.push({ where: `variable "${variable.name}"`, expr });
  }
  return queries;
}

/** Metric names a Prometheus text exposition provides. */
export function exportedNames(exposition) {
  const names = new Set();
  for (const line of exposition.split('\n')) {
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (declared) {
      const [, name, type] = declared;
      names.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}

/** Label names seen on each metric's samples in a Prometheus text exposition. */
export function exportedLabels(exposition) {
  const labels = new Map();
  for (const line of exposition.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s/.exec(line);
    if (!sample) continue;
    const names = labels.get(sample[1]) ?? new Set();
    for (const [, label] of sample[2].matchAll(/([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"/g)) names.add(label);
    labels.set(sample[1], names);
  }
  return labels;
}

/** `metric{label=...}` selectors of one expression: [metric, label names] pairs. */
function selectorLabels(expr) {
  const selectors = [];
  for (const [, metric, matchers] of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    selectors.push([metric, [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((match) => match[1])]);
  }
  return selectors;
}

/** Labels Prometheus attaches to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);

/**
 * The problems of a dashboard against a scrape: unknown metric names, and label
 * names in selectors that the metric's samples never carry (checked only for
 * metrics with samples in the scrape).
 */
export function checkDashboard(dashboard, exposition) {
  const known = exportedNames(exposition);
  const labels = exportedLabels(exposition);
  const problems = [];
  const used = new Set();
  for (const { where, expr } of dashboardQueries(dashboard)) {
    const names = metricNames(expr);
    if (names.size === 0) problems.push(`${where}: no metric in ${expr}`);
    for (const name of names) {
      used.add(name);
      if (!known.has(name) && !SYNTHETIC.has(name)) problems.push(`${where}: unknown metric ${name}`);
    }
    for (const [metric, selected] of selectorLabels(expr)) {
      const seen = labels.get(metric);
      if (!seen) continue;
      for (const label of selected) {
        if (!TARGET_LABELS.has(label) && !seen.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
      }
    }
  }
  return { used: [...used].sort(), problems };
}

async function readExposition(source) {
  if (source === undefined || source === '-') {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  if (/^https?:\/\//.test(source)) {
    const token = process.env.METRICS_TOKEN;
    const response = await fetch(source, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    if (!response.ok) throw new Error(`${source}: HTTP ${response.status} (is METRICS_TOKEN set to tessera's?)`);
    return response.text();
  }
  return readFileSync(source, 'utf8');
}

async function main(argv) {
  const args = [...argv];
  let dashboardPath = DEFAULT_DASHBOARD;
  const flag = args.indexOf('--dashboard');
  if (flag !== -1) {
    dashboardPath = args[flag + 1];
    args.splice(flag, 2);
  }
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8'));
  const exposition = await readExposition(args[0]);
  if (!exposition.includes('# TYPE')) throw new Error('that is not a Prometheus text exposition');
  const { used, problems } = checkDashboard(dashboard, exposition);
  if (problems.length > 0) {
    console.error(`${dashboardPath}:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  console.log(`${dashboardPath}: all ${used.length} metrics exist (${used.join(', ')})`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error.message);
      process.exit(2);
    },
  );
}
