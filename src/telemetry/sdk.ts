/**
 * Starts OpenTelemetry tracing when the standard environment asks for it:
 * OTEL_TRACES_EXPORTER (e.g. `otlp`, `console`) or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), unless
 * OTEL_SDK_DISABLED=true. Everything else (service name, sampler, headers)
 * comes from the usual OTEL_* variables, read by the SDK itself. Off by
 * default. Returns a function that flushes and stops it.
 *
 * The SDK is imported only when tracing is on: it is a large module tree
 * (~12 MiB of resident memory) that a server without tracing never needs.
 */
export async function startTracing(env: NodeJS.ProcessEnv = process.env): Promise<(() => Promise<void>) | null> {
  if (env.OTEL_SDK_DISABLED === 'true') return null;
  const wanted =
    (env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER !== 'none') ||
    env.OTEL_EXPORTER_OTLP_ENDPOINT ||
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (!wanted) return null;
  env.OTEL_SERVICE_NAME ??= 'tessera';
  // No automatic instrumentations: tessera creates its own spans for hashing,
  // signing and database calls, which is what its latency is made of.
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ instrumentations: [] });
  sdk.start();
  return () => sdk.shutdown();
}
