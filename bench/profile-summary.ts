// Summarizes V8 CPU profiles (node --cpu-prof; `npm run bench -- --profile`
// writes the service's to bench/results/tmp/profiles/<database>/):
//
//   node --import tsx bench/profile-summary.ts <file.cpuprofile | directory> [top] [skip-seconds]
//
// Prints self time grouped by package / source file, and the top functions;
// samples of the first skip-seconds (start-up) are left out.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** node_modules/<package> (scoped too), dist/src/<file>, node:<module>, or a V8 pseudo-frame. */
function owner(url: string, functionName: string): string {
  if (!url) return `(${functionName || 'native'})`;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  const source = /\/(dist\/src\/.+|src\/.+)$/.exec(url);
  if (source?.[1]) return source[1];
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

function summarize(file: string, top: number, skipSeconds: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let elapsed = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const id = profile.samples[i] as number;
    const delta = profile.timeDeltas[i] ?? 0;
    elapsed += delta;
    if (elapsed < skipSeconds * 1e6) continue;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  let idle = 0;
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, micros] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const group = owner(url, functionName);
    if (functionName === '(idle)') idle += micros;
    byOwner.set(group, (byOwner.get(group) ?? 0) + micros);
    const name = `${functionName || '(anonymous)'} ${group}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }
  const percent = (micros: number) => `${((micros / total) * 100).toFixed(1).padStart(5)}%`;
  const print = (title: string, entries: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [name, micros] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${percent(micros)}  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}`);
    }
  };
  console.log(
    `${file}: ${(total / 1e6).toFixed(1)} s sampled${skipSeconds ? ` after the first ${skipSeconds} s` : ''}, ` +
      `${((total - idle) / 1e6).toFixed(1)} s busy`,
  );
  print('self time by package / file', byOwner);
  print('self time by function', byFunction);
}

const [target, topArg, skipArg] = process.argv.slice(2);
if (!target) {
  console.error('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile | directory> [top] [skip-seconds]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((name) => name.endsWith('.cpuprofile'))
      .map((name) => join(target, name))
  : [target];
for (const file of files) summarize(file, top, Number(skipArg ?? 0));
