import { type Attributes, SpanStatusCode, trace } from '@opentelemetry/api';
import { version } from '../paths.js';

/**
 * tessera's tracer. Without an OpenTelemetry SDK started (the default; see
 * src/telemetry/sdk.ts) every span is a no-op, so instrumented code costs
 * next to nothing when tracing is off.
 */
export const tracer = trace.getTracer('tessera', version);

/** Runs `work` inside a span named `name`; records failures on the span. */
export function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}
