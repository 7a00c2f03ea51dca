// One transport diagnostic per driver mistake, each kind exercised through the BAR as a driver would.
import { afterAll, describe, expect, it } from "vitest";
import { CONFORMANCE } from "../src/balloon/diagnostics.js";
import { BAR_LAYOUT, STATUS, TRANSPORT_DIAGNOSTIC_KINDS } from "../src/virtio/pci-transport.js";
import { setup } from "./support/pci-driver.js";

const seen = new Set<string>();
const V1 = 1n << 32n;
const A_D = STATUS.ACKNOWLEDGE | STATUS.DRIVER;
const NOTIFY = BAR_LAYOUT.notify.offset;

/** A transport driven by `run`; returns the kinds diagnosed (and records them as covered). */
function kinds(run: (s: ReturnType<typeof setup>) => void): { kinds: string[]; s: ReturnType<typeof setup> } {
  const s = setup();
  expect(() => run(s)).not.toThrow();
  const k = s.diags.map((d) => d.kind);
  for (const x of k) seen.add(x);
  return { kinds: k, s };
}

/** Negotiated (VERSION_1) and FEATURES_OK, queue 0 enabled at 0x1000. */
function ready(s: ReturnType<typeof setup>, live = true): void {
  s.driver.setStatus(A_D);
  s.driver.accept(V1);
  s.driver.setStatus(A_D | STATUS.FEATURES_OK);
  s.driver.setupQueue(0, 16, 0x1000);
  if (live) s.driver.setStatus(A_D | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
}

describe("transport diagnostics: status and negotiation", () => {
  it("one refused FEATURES_OK emits exactly one diagnostic", () => {
    const { kinds: k, s } = kinds((s) => {
      s.driver.setStatus(A_D);
      s.driver.accept(V1 | 4n);
      s.driver.setStatus(A_D | STATUS.FEATURES_OK);
    });
    expect(k).toEqual(["features-refused"]);
    expect(s.driver.status() & STATUS.FEATURES_OK).toBe(0);
  });

  it("features-not-offered / features-changed-after-features-ok / feature-select-out-of-range", () => {
    expect(kinds((s) => { s.driver.setStatus(A_D); s.driver.accept(V1 | (1n << 40n)); s.driver.setStatus(A_D | STATUS.FEATURES_OK); }).kinds).toEqual(["features-not-offered"]);
    expect(kinds((s) => { ready(s, false); s.driver.accept(V1 | 1n); }).kinds).toEqual(["features-changed-after-features-ok", "features-changed-after-features-ok"]);
    expect(kinds((s) => { s.w(s.C + 0x08, 4, 2); s.w(s.C + 0x0c, 4, 1); }).kinds).toEqual(["feature-select-out-of-range"]);
  });

  it("FEATURES_OK without ACKNOWLEDGE/DRIVER: diagnosed once, features still checked", () => {
    const { kinds: k, s } = kinds((s) => { s.driver.accept(V1); s.driver.setStatus(STATUS.FEATURES_OK); });
    expect(k).toEqual(["features-ok-without-driver"]);
    expect(s.driver.status()).toBe(STATUS.FEATURES_OK);
  });

  it("DRIVER_OK without FEATURES_OK: diagnosed; the device goes live once FEATURES_OK follows", () => {
    const { kinds: k, s } = kinds((s) => {
      s.driver.setStatus(A_D);
      s.driver.accept(V1);
      s.driver.setStatus(A_D | STATUS.DRIVER_OK);
      expect(s.dev.activated).toBeNull();
      s.driver.setStatus(A_D | STATUS.DRIVER_OK | STATUS.FEATURES_OK);
    });
    expect(k).toEqual(["driver-ok-without-features-ok"]);
    expect(s.dev.activated).toEqual({ features: V1, queues: 2 });
  });

  it("driver-set-needs-reset / status-reserved-bits / status-bits-cleared: ignored, bits never cleared", () => {
    const { kinds: k, s } = kinds((s) => {
      s.driver.setStatus(A_D | STATUS.DEVICE_NEEDS_RESET);
      s.driver.setStatus(A_D | 0x30);
      s.driver.setStatus(STATUS.ACKNOWLEDGE);
    });
    expect(k).toEqual(["driver-set-needs-reset", "status-reserved-bits", "status-bits-cleared"]);
    expect(s.driver.status()).toBe(A_D);
  });
});

describe("transport diagnostics: BAR accesses", () => {
  it("write-to-read-only-field / device-config-out-of-range / bar-write-unused", () => {
    expect(kinds((s) => s.w(s.C + 0x12, 2, 9)).kinds).toEqual(["write-to-read-only-field"]);
    expect(kinds((s) => s.w(BAR_LAYOUT.device.offset + 6, 4, 1)).kinds).toEqual(["device-config-out-of-range"]);
    const { kinds: k, s } = kinds((s) => {
      s.w(0x3c, 4, 0xffffffff); // gap after the common structure
      s.w(0x50, 1, 1); // gap after ISR
      s.w(0xf0, 4, 1); // past the notify structure
      s.w(BAR_LAYOUT.common.offset + 0x3a, 4, 0); // crosses the common structure's end
    });
    expect(k).toEqual(["bar-write-unused", "bar-write-unused", "bar-write-unused", "bar-write-unused"]);
    expect(s.driver.status()).toBe(0);
  });

  it("field-access-not-natural: a write across two fields changes neither; a narrow write is merged", () => {
    const { kinds: k, s } = kinds((s) => {
      s.w(s.C + 0x14, 4, 0x0003_0007); // device_status + config_generation + queue_select
      s.w(s.C + 0x16, 1, 1); // one byte of queue_select
      s.w(NOTIFY + 1, 1, 0); // not a queue's notify address
    });
    expect(k).toEqual(["field-access-not-natural", "field-access-not-natural", "field-access-not-natural"]);
    expect(s.driver.status()).toBe(0);
    expect(s.r(s.C + 0x16, 2)).toBe(1);
  });
});

describe("transport diagnostics: queues and notifications", () => {
  it("queue-select-out-of-range / queue-configured-while-enabled / queue-enable-refused / queue-disable-not-supported / queue-enable-bad-value", () => {
    expect(kinds((s) => { s.w(s.C + 0x16, 2, 7); s.w(s.C + 0x18, 2, 16); }).kinds).toEqual(["queue-select-out-of-range"]);
    expect(kinds((s) => { ready(s); s.w(s.C + 0x18, 2, 8); }).kinds).toEqual(["queue-configured-while-enabled"]);
    expect(kinds((s) => { ready(s, false); s.driver.setupQueue(1, 16, s.mem.size - 64); }).kinds).toEqual(["queue-enable-refused"]);
    expect(kinds((s) => { ready(s); s.w(s.C + 0x1c, 2, 0); }).kinds).toEqual(["queue-disable-not-supported"]);
    const { kinds: k, s } = kinds((s) => {
      ready(s, false);
      s.w(s.C + 0x16, 2, 1);
      s.w(s.C + 0x18, 2, 16);
      s.w(s.C + 0x1c, 2, 2);
    });
    expect(k).toEqual(["queue-enable-bad-value"]);
    expect(s.t.queues[1]!.enabled).toBe(false);
  });

  it("queue-address-too-large: diagnosed, the queue cannot be enabled, and the snapshot still restores", () => {
    const { kinds: k, s } = kinds((s) => {
      s.w(s.C + 0x16, 2, 1); // queue 1, never enabled
      s.w(s.C + 0x20, 4, 0x1000);
      s.w(s.C + 0x24, 4, 0x01000000);
    });
    expect(k).toEqual(["queue-address-too-large"]);
    expect(s.r(s.C + 0x24, 4)).toBe(0x01000000);
    const saved = JSON.parse(JSON.stringify(s.t.saveState())) as unknown;
    const b = setup();
    expect(() => b.t.restoreState(saved)).not.toThrow();
    b.w(b.C + 0x16, 2, 1);
    expect(b.r(b.C + 0x24, 4)).toBe(0x01000000);
  });

  it("queue-enabled-past-features: a queue enabled before FEATURES_OK that the accepted features lack is disabled, and the snapshot restores", () => {
    const { kinds: k, s } = kinds((s) => {
      s.driver.setStatus(A_D);
      s.driver.accept(V1); // without bit 1: two queues once FEATURES_OK is set (three are offered)
      s.driver.setupQueue(2, 16, 0x1000);
      s.driver.setStatus(A_D | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    });
    expect(k).toEqual(["queue-enabled-past-features"]);
    expect(s.t.queues[2]!.enabled).toBe(false);
    const saved = JSON.parse(JSON.stringify(s.t.saveState())) as unknown;
    expect(() => setup().t.restoreState(saved)).not.toThrow();
  });

  it("notify-disabled-queue / notify-before-driver-ok / notify-value-mismatch / notify-while-needs-reset", () => {
    expect(kinds((s) => s.w(NOTIFY + 2, 2, 1)).kinds).toEqual(["notify-disabled-queue"]);
    const early = kinds((s) => { ready(s, false); s.w(NOTIFY, 2, 0); });
    expect(early.kinds).toEqual(["notify-before-driver-ok"]);
    expect(CONFORMANCE["notify-before-driver-ok"].severity).toBe("tolerated");
    const mism = kinds((s) => { ready(s); s.w(NOTIFY, 2, 5); });
    expect(mism.kinds).toEqual(["notify-value-mismatch"]);
    expect(mism.s.dev.notified).toEqual([0]); // the address names the queue
    const { kinds: k, s } = kinds((s) => {
      ready(s);
      s.dev.handle.needsReset("test");
      s.w(NOTIFY, 2, 0);
    });
    expect(k).toEqual(["notify-while-needs-reset"]);
    expect(s.dev.notified).toEqual([]);
  });
});

afterAll(() => {
  // Every transport kind has a test above, and a severity + rule in the conformance table.
  expect(TRANSPORT_DIAGNOSTIC_KINDS.filter((k) => !seen.has(k))).toEqual([]);
  for (const k of TRANSPORT_DIAGNOSTIC_KINDS) expect(CONFORMANCE[k].rule.length).toBeGreaterThan(10);
});
