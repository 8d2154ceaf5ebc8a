import { type Attributes, ProxyTracerProvider, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { version } from '../paths.js';

/** The provider the API answers while no SDK (or other provider) is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * tessera's tracer, or null while no tracer provider is registered (the
 * default; see src/telemetry/sdk.ts). Looked up on every call, so that a
 * provider registered later, or removed, takes effect at once; the lookup is
 * a global read, where a no-op span would still cost an async wrapper, a
 * context and a span object on every database call of every refresh.
 */
function currentTracer(): Tracer | null {
  const provider = trace.getTracerProvider();
  if (provider instanceof ProxyTracerProvider && provider.getDelegate() === NOOP_PROVIDER) return null;
  return provider.getTracer('tessera', version);
}

/** Runs `work` inside a span named `name`; records failures on the span. Without a tracer provider, just runs it. */
export function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
  const tracer = currentTracer();
  if (!tracer) {
    // As inside a span: a synchronous throw becomes a rejection.
    try {
      return work();
    } catch (error) {
      return Promise.reject(error);
    }
  }
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

/**
 * Runs one database call inside a span `db.<model>.<operation>` carrying
 * `db.system` and `db.operation`: the same names for Prisma's model queries
 * (src/db/database.ts) and for the statements run straight through the driver.
 */
export function inDatabaseSpan<T>(
  system: string,
  model: string,
  operation: string,
  work: () => Promise<T>,
): Promise<T> {
  return inSpan(`db.${model}.${operation}`, { 'db.system': system, 'db.operation': operation }, work);
}
