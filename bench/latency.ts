import * as hdr from "hdr-histogram-js";

/** Percentiles of one latency distribution, in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
}

/**
 * An HDR histogram of latencies recorded in microseconds (3 significant digits, up to one
 * minute). The pure-JS build: WebAssembly would need an async init for no gain at these
 * rates.
 */
export class LatencyRecorder {
  readonly #histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records a duration given in milliseconds (performance.now() differences). */
  recordMs(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  /** Records a value as is (for callers that measure in other units, e.g. ns). */
  record(value: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(value)));
  }

  summary(): LatencySummary {
    const h = this.#histogram;
    return {
      count: h.totalCount,
      p50Us: h.getValueAtPercentile(50),
      p90Us: h.getValueAtPercentile(90),
      p99Us: h.getValueAtPercentile(99),
      p999Us: h.getValueAtPercentile(99.9),
      maxUs: h.maxValue,
      meanUs: Math.round(h.mean * 10) / 10,
    };
  }
}
