// The load generator test covers what decides the numbers: the SSE client,
// the per-client accounting and the latency histogram. The server targets and
// the orchestrator are exercised by `pnpm bench` itself, never in CI.
export default function coverageMap () {
  return ['src/tracker.ts', 'src/histogram.ts', 'src/sse-client.ts']
}
