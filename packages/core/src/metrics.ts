import { Counter, Gauge, Registry } from 'prom-client'

/**
 * One Prometheus registry per rt instance, shared by every package that plugs
 * into it. Metrics are created on first use and then reused, so two transports
 * (or two registrations in tests) never collide on a name.
 */
export class Metrics {
  readonly registry = new Registry()

  gauge(name: string, help: string): Gauge {
    const existing = this.registry.getSingleMetric(name)
    if (existing !== undefined) return existing as Gauge
    return new Gauge({ name, help, registers: [this.registry] })
  }

  counter(name: string, help: string): Counter {
    const existing = this.registry.getSingleMetric(name)
    if (existing !== undefined) return existing as Counter
    return new Counter({ name, help, registers: [this.registry] })
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return this.registry.metrics()
  }
}
