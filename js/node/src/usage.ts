import type { KeyplaneClient } from "./client.js";
import { KeyplaneApiError, KeyplaneRateLimitedError } from "./errors.js";
import type { UsageEvent } from "./types.js";
import type { Logger } from "./guard.js";

export interface UsageBatcherOptions {
  /** flushIntervalMs is how often queued events are sent; default 1000. */
  flushIntervalMs?: number;
  /** maxPending bounds the queue while keyplane does not take events: past it, new ones are dropped and counted. Default 10 000. */
  maxPending?: number;
  /** timeoutMs bounds each POST /v1/usage; default 5000. */
  timeoutMs?: number;
  logger?: Logger;
}

export interface UsageStats {
  /** events keyplane accepted. */
  sent: number;
  /** events dropped because the queue was full (keyplane down or slow). */
  dropped: number;
  /** events keyplane refused (a 4xx: resending would not help). */
  rejected: number;
  /** events queued now. */
  pending: number;
}

/** maxBatch is what POST /v1/usage takes at once. */
const maxBatch = 1000;
/** maxEventAgeMs keeps events keyplane would refuse (over 24 hours old) out of a batch, which is refused whole. */
const maxEventAgeMs = 23 * 3600_000;

/**
 * UsageBatcher sends request outcomes (status, latency) to keyplane's
 * POST /v1/usage in batches, every flushIntervalMs or at 1,000 events, from
 * a bounded queue: while keyplane is down events wait (and go with a later
 * flush); past maxPending they are dropped, and counted in stats().dropped.
 * report() never blocks and never throws.
 */
export class UsageBatcher {
  private readonly client: KeyplaneClient;
  private readonly max: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private pending: UsageEvent[] = [];
  private flushing: Promise<void> | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private counts = { sent: 0, dropped: 0, rejected: 0 };
  private droppedUnlogged = 0;
  private closed = false;

  constructor(client: KeyplaneClient, opts: UsageBatcherOptions = {}) {
    this.client = client;
    this.max = opts.maxPending ?? 10_000;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.logger = opts.logger ?? console;
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
    this.timer.unref?.(); // a pending flush must not keep the process alive
  }

  /** report queues one event; it never blocks. */
  report(ev: UsageEvent): void {
    if (this.closed) return;
    if (this.pending.length >= this.max) {
      this.counts.dropped++;
      this.droppedUnlogged++;
      return;
    }
    this.pending.push(ev);
    if (this.pending.length >= maxBatch) void this.flush();
  }

  stats(): UsageStats {
    return { ...this.counts, pending: this.pending.length };
  }

  /** flush sends what is queued now; events keyplane could not take stay queued. It never throws. */
  flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    if (this.droppedUnlogged > 0) {
      this.logger.warn(`keyplane: ${this.droppedUnlogged} usage events dropped: keyplane did not take them fast enough`);
      this.droppedUnlogged = 0;
    }
    const cutoff = Date.now() - maxEventAgeMs;
    let batch = this.pending.filter((e) => !e.time || Date.parse(e.time) > cutoff);
    this.pending = [];
    while (batch.length > 0) {
      const chunk = batch.slice(0, maxBatch);
      try {
        const res = await this.client.usage.report(chunk, { timeoutMs: this.timeoutMs });
        this.counts.sent += res.accepted;
      } catch (err) {
        if (err instanceof KeyplaneApiError && !(err instanceof KeyplaneRateLimitedError) && err.status < 500) {
          this.counts.rejected += chunk.length;
          this.logger.warn(`keyplane: usage report refused, ${chunk.length} events dropped: ${err.message}`);
          batch = batch.slice(chunk.length);
          continue;
        }
        this.requeue(batch);
        this.logger.warn(`keyplane: usage report failed, ${batch.length} events kept: ${(err as Error).message}`);
        return;
      }
      batch = batch.slice(chunk.length);
    }
  }

  /** requeue puts unsent events back before those queued since; the oldest go past maxPending. */
  private requeue(events: UsageEvent[]): void {
    this.pending = events.concat(this.pending);
    const over = this.pending.length - this.max;
    if (over > 0) {
      this.pending = this.pending.slice(over);
      this.counts.dropped += over;
      this.droppedUnlogged += over;
    }
  }

  /** close stops the timer and sends what is left. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
    this.closed = true;
  }
}
