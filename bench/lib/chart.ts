import type { BenchReport } from './report.js';
import { DATABASE_NAMES } from './report.js';
import { formatMs, formatRate } from './stats.js';
import type { DatabaseKind } from './tessera-suite.js';

interface Bar {
  value: number | null;
  /** Min and max over the repetitions, drawn as a whisker. */
  range?: [number, number];
  series: number;
  /** Text above the bar. */
  label: string;
  /** Smaller text under the label. */
  detail?: string;
}

interface Group {
  label: string;
  sublabel?: string;
  bars: Bar[];
}

interface Panel {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  groups: Group[];
  series: { name: string; color: string }[];
  max: number;
  ticks: number[];
  tickFormat: (value: number) => string;
  /** A dashed horizontal line, e.g. the ceiling at ratio 1. */
  reference?: { value: number; label: string };
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
/** A white outline under bar labels, so they stay legible over grid and reference lines. */
const HALO = 'stroke="#fff" stroke-width="3" paint-order="stroke"';
const SERIES_COLORS: Record<DatabaseKind, string> = { sqlite: '#3b6fb6', postgres: '#d9822b' };

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escapeXml(content)}</text>`;
}

/** Round tick values from 0 up to the first tick at or above `max`. */
function niceTicks(max: number, count = 4): number[] {
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let value = 0; value < max + step - step * 1e-6; value += step) ticks.push(Number(value.toFixed(6)));
  return ticks;
}

const tickText = (value: number) =>
  value === 0
    ? '0'
    : Math.abs(value) < 1
      ? value.toFixed(2)
      : Number.isInteger(value)
        ? String(value)
        : value.toFixed(1);

function panel(p: Panel): string {
  const out: string[] = [];
  const plotTop = p.y + 44;
  const plotBottom = p.y + p.height - 46;
  const plotLeft = p.x + 48;
  const plotRight = p.x + p.width - 10;
  const scale = (value: number) => plotBottom - (Math.min(value, p.max) / p.max) * (plotBottom - plotTop);
  out.push(text(p.x, p.y + 16, p.title, 'font-size="15" font-weight="600" fill="#222"'));
  // legend
  let legendX = p.x;
  for (const series of p.series) {
    out.push(`<rect x="${legendX}" y="${p.y + 24}" width="11" height="11" rx="2" fill="${series.color}"/>`);
    out.push(text(legendX + 16, p.y + 34, series.name, 'font-size="12" fill="#444"'));
    legendX += 24 + series.name.length * 7;
  }
  for (const tick of p.ticks) {
    const y = scale(tick);
    out.push(
      `<line x1="${plotLeft}" x2="${plotRight}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e4e4" stroke-width="1"/>`,
    );
    out.push(text(plotLeft - 6, y + 4, p.tickFormat(tick), 'font-size="11" fill="#777" text-anchor="end"'));
  }
  if (p.reference) {
    const y = scale(p.reference.value);
    out.push(
      `<line x1="${plotLeft}" x2="${plotRight}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#b22" stroke-width="1.2" stroke-dasharray="5 4"/>`,
    );
    out.push(text(plotRight, y - 5, p.reference.label, 'font-size="11" fill="#b22" text-anchor="end"'));
  }
  const groupWidth = (plotRight - plotLeft) / Math.max(1, p.groups.length);
  const barsPerGroup = Math.max(1, ...p.groups.map((g) => g.bars.length));
  const barWidth = Math.min(46, (groupWidth * 0.7) / barsPerGroup);
  p.groups.forEach((group, gi) => {
    const centre = plotLeft + groupWidth * (gi + 0.5);
    const start = centre - (barWidth * group.bars.length) / 2;
    group.bars.forEach((bar, bi) => {
      const x = start + bi * barWidth + 2;
      const width = barWidth - 4;
      const color = p.series[bar.series]?.color ?? '#888';
      if (bar.value === null || !Number.isFinite(bar.value)) {
        out.push(text(x + width / 2, plotBottom - 4, 'n/a', 'font-size="10" fill="#999" text-anchor="middle"'));
        return;
      }
      const top = scale(bar.value);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${width.toFixed(1)}" height="${(plotBottom - top).toFixed(1)}" fill="${color}" rx="2"/>`,
      );
      const labelBase = top;
      // The detail goes inside the bar when it fits, else above it with the label.
      const detailInside = bar.detail !== undefined && plotBottom - top >= 24;
      const detailAbove = bar.detail !== undefined && !detailInside;
      if (
        bar.range &&
        Number.isFinite(bar.range[0]) &&
        Number.isFinite(bar.range[1]) &&
        bar.range[0] !== bar.range[1]
      ) {
        const [low, high] = [scale(bar.range[0]), scale(bar.range[1])];
        // Along the bar's right edge, clear of the labels, which sit centred on the median.
        const edge = x + width - 5;
        out.push(
          `<path d="M${edge.toFixed(1)} ${low.toFixed(1)}V${high.toFixed(1)}M${(edge - 3).toFixed(1)} ${low.toFixed(1)}h6M${(edge - 3).toFixed(1)} ${high.toFixed(1)}h6" stroke="#333" stroke-width="1" fill="none"/>`,
        );
      }
      out.push(
        text(
          x + width / 2,
          labelBase - (detailAbove ? 15 : 4),
          bar.label,
          `font-size="11" font-weight="600" fill="#222" text-anchor="middle" ${HALO}`,
        ),
      );
      if (bar.detail && detailInside)
        out.push(text(x + width / 2, plotBottom - 6, bar.detail, 'font-size="9" fill="#fff" text-anchor="middle"'));
      else if (bar.detail)
        out.push(
          text(x + width / 2, labelBase - 4, bar.detail, `font-size="9" fill="#666" text-anchor="middle" ${HALO}`),
        );
    });
    out.push(text(centre, plotBottom + 16, group.label, 'font-size="12" fill="#222" text-anchor="middle"'));
    if (group.sublabel)
      out.push(text(centre, plotBottom + 30, group.sublabel, 'font-size="10" fill="#777" text-anchor="middle"'));
  });
  out.push(
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#999" stroke-width="1"/>`,
  );
  return out.join('\n');
}

/**
 * The README chart, hand-written SVG: throughput as a fraction of its ceiling
 * per endpoint and database, and p99 latency idle vs under a login flood.
 */
export function renderChart(report: BenchReport): string {
  const width = 820;
  const dbs = report.databases;
  const series = dbs.map((db) => ({ name: DATABASE_NAMES[db.database], color: SERIES_COLORS[db.database] }));

  const ratioGroups: Group[] = [
    { key: 'jwks', label: 'JWKS', sublabel: 'vs bare Fastify, same bytes' },
    { key: 'login', label: 'login', sublabel: `vs raw argon2id ×${report.settings.hashConcurrency}` },
    { key: 'refresh', label: 'refresh', sublabel: 'vs Fastify + one RS256 sign' },
  ].map(({ key, label, sublabel }) => ({
    label,
    sublabel,
    bars: dbs.map((db, i): Bar => {
      const spread = report.ratios[db.database]?.[key as 'jwks' | 'login' | 'refresh'];
      const value = spread && Number.isFinite(spread.median) ? spread.median : null;
      const m = db[key as 'jwks' | 'login' | 'refresh'];
      return {
        value,
        ...(spread ? { range: [spread.min, spread.max] as [number, number] } : {}),
        series: i,
        label: value === null ? '-' : value.toFixed(2),
        detail: `${formatRate(m.rps.median)}/s`,
      };
    }),
  }));
  const maxRatio = Math.max(
    1.3,
    ...ratioGroups.flatMap((g) => g.bars.map((b) => Math.max(b.value ?? 0, b.range?.[1] ?? 0) * 1.25)),
  );

  const floodSeries = [
    { name: 'idle', color: '#8aa8cf' },
    { name: `while ${report.settings.connections.flood} connections flood logins`, color: '#c0392b' },
  ];
  const latencyPanel = (endpoint: 'jwks' | 'refresh', x: number, panelWidth: number) => {
    const groups: Group[] = dbs.map((db) => {
      const idle = endpoint === 'jwks' ? db.jwksBesideLoginFlood : db.refreshBesideLoginFlood;
      const flood = endpoint === 'jwks' ? db.jwksUnderLoginFlood : db.refreshUnderLoginFlood;
      const ratio = db.floodP99Ratios[endpoint];
      return {
        label: DATABASE_NAMES[db.database],
        sublabel: `p99 ×${ratio.median.toFixed(2)} · req/s ${formatRate(idle.rps.median)} → ${formatRate(flood.rps.median)}`,
        bars: [
          { value: idle.p99.median, range: [idle.p99.min, idle.p99.max], series: 0, label: formatMs(idle.p99.median) },
          {
            value: flood.p99.median,
            range: [flood.p99.min, flood.p99.max],
            series: 1,
            label: formatMs(flood.p99.median),
          },
        ],
      };
    });
    const highest = Math.max(1, ...groups.flatMap((g) => g.bars.map((b) => Math.max(b.value ?? 0, b.range?.[1] ?? 0))));
    const ticks = niceTicks(highest * 1.2);
    return panel({
      x,
      y: 336,
      width: panelWidth,
      height: 270,
      title: `${endpoint === 'jwks' ? 'JWKS' : 'refresh'} p99 latency, ms`,
      groups,
      series: floodSeries,
      max: ticks[ticks.length - 1] ?? highest,
      ticks,
      tickFormat: tickText,
    });
  };

  const top = panel({
    x: 16,
    y: 46,
    width: width - 32,
    height: 270,
    title: 'Throughput as a fraction of its ceiling (tessera ÷ ceiling, paired runs; whiskers: min–max)',
    groups: ratioGroups,
    series,
    max: maxRatio,
    ticks: niceTicks(maxRatio).filter((t) => t <= maxRatio),
    tickFormat: (v) => v.toFixed(2),
    reference: { value: 1, label: 'ceiling' },
  });
  const half = (width - 48) / 2;
  const bottom = [latencyPanel('jwks', 16, half), latencyPanel('refresh', 32 + half, half)].join('\n');
  const m = report.machine;
  const heading = `tessera ${report.mode === 'quick' ? 'quick ' : ''}benchmark, ${report.finishedAt.slice(0, 10)}`;
  const machine =
    `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; ` +
    `${report.settings.repetitions}×${report.settings.seconds} s runs, medians; ` +
    `commit ${report.git.commit?.slice(0, 10) ?? 'unknown'}${report.git.dirty ? '+' : ''}`;
  const height = 630;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(16, 24, heading, 'font-size="17" font-weight="700" fill="#111"'),
    text(16, 40, machine, 'font-size="11" fill="#666"'),
    top,
    bottom,
    '</svg>',
    '',
  ].join('\n');
}
