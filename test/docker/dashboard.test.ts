import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';

const docker = fileURLToPath(new URL('../../docker/', import.meta.url));
const checker = join(docker, 'check-dashboard.mjs');
const dashboardPath = join(docker, 'grafana', 'dashboards', 'tessera.json');
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
const DS_UID = '${DS_PROMETHEUS}';
const read = (path: string) => readFileSync(join(docker, path), 'utf8');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

describe('docker/: Grafana dashboard, Prometheus and compose', () => {
  let t: TestApp;
  let exposition: string;
  before(async () => {
    t = await startTestApp('sqlite');
    const user = await registerAndLogin(t.app);
    await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
    });
    const res = await t.app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    exposition = res.body;
  });
  after(() => t.close());

  it('every metric the dashboard queries is one tessera exports', () => {
    const run = spawnSync(process.execPath, [checker, '-'], { input: exposition, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /all \d+ metrics exist/);
    for (const name of ['tessera_logins_total', 'tessera_http_request_duration_seconds_bucket']) {
      assert.ok(run.stdout.includes(name), `${name} is queried`);
    }
  });

  it('the checker reports a metric tessera does not export', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-dashboard-'));
    try {
      const broken = join(dir, 'broken.json');
      writeFileSync(
        broken,
        readFileSync(dashboardPath, 'utf8').replaceAll('tessera_logins_total', 'tessera_login_total'),
      );
      const run = spawnSync(process.execPath, [checker, '--dashboard', broken, '-'], {
        input: exposition,
        encoding: 'utf8',
      });
      assert.equal(run.status, 1);
      assert.match(run.stderr, /unknown metric tessera_login_total/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard reads the provisioned Prometheus datasource through DS_PROMETHEUS', () => {
    const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8'));
    assert.ok(dashboard.schemaVersion >= 39);
    const panels = allPanels(dashboard.panels);
    const ids = panels.map((panel) => panel.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const panel of panels.filter((candidate) => candidate.type !== 'row')) {
      assert.equal(panel.datasource?.uid, DS_UID, panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has queries`);
      for (const target of panel.targets ?? []) assert.equal(target.datasource?.uid, DS_UID, panel.title);
    }
    const variable = dashboard.templating.list.find((v: { name: string }) => v.name === 'DS_PROMETHEUS');
    assert.equal(variable?.type, 'datasource');
    assert.equal(variable?.current?.value, 'prometheus');
    assert.match(read('grafana/provisioning/datasources/prometheus.yml'), /^\s+uid: prometheus$/m);
    assert.match(read('grafana/provisioning/dashboards/tessera.yml'), /path: \/var\/lib\/grafana\/dashboards$/m);
  });

  it('Prometheus reads the bearer token from the file the compose entrypoint writes', () => {
    assert.match(read('prometheus/prometheus.yml'), /credentials_file: \/prometheus\/metrics-token$/m);
    assert.match(read('compose.yml'), /> \/prometheus\/metrics-token$/m);
  });

  const compose = [['docker', 'compose'], ['docker-compose']].find(
    ([command, ...args]) => spawnSync(command!, [...args, 'version'], { stdio: 'ignore' }).status === 0,
  );

  it('compose.yml is valid, with and without the observability profile', {
    skip: !compose && 'no docker compose',
  }, () => {
    const [command, ...args] = compose!;
    for (const profile of [[], ['--profile', 'observability']]) {
      const run = spawnSync(command!, [...args, '-f', join(docker, 'compose.yml'), ...profile, 'config'], {
        encoding: 'utf8',
        env: { ...process.env, KEY_ENCRYPTION_SECRET: 'ci-only-placeholder-secret-0123456789abcdef' },
      });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /prometheus:/);
    }
    for (const [, source] of read('compose.yml').matchAll(/^\s+- \.\/([^:]+):/gm)) {
      assert.ok(existsSync(join(docker, source!)), `docker/${source} is mounted and exists`);
    }
  });
});
