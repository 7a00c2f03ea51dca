// virtio-pci transport, driven by a scripted in-process driver through its I/O BAR.
import { describe, expect, it } from "vitest";
import { BAR_LAYOUT, STATUS } from "../src/virtio/pci-transport.js";
import { setup } from "./support/pci-driver.js";

describe("virtio-pci config space", () => {
  it("identifies a modern balloon with the four virtio capabilities in BAR 0", () => {
    const { pci } = setup();
    const s = pci.dev.configSpace;
    const dv = new DataView(s.buffer);
    expect(dv.getUint16(0, true)).toBe(0x1af4);
    expect(dv.getUint16(2, true)).toBe(0x1045);
    expect(s[8]).toBe(1);
    expect(dv.getUint32(0x10, true)).toBe(0x9001);
    expect(pci.dev.bar).toEqual({ port: 0x9000, size: 256 });
    const found = new Map<number, { offset: number; length: number; mult?: number }>();
    for (let at = s[0x34], guard = 0; at && guard < 48; at = s[at + 1], guard++) {
      expect(s[at]).toBe(0x09);
      found.set(s[at + 3], {
        offset: dv.getUint32(at + 8, true),
        length: dv.getUint32(at + 12, true),
        ...(s[at + 3] === 2 ? { mult: dv.getUint32(at + 16, true) } : {}),
      });
    }
    expect(found.get(1)).toEqual(BAR_LAYOUT.common);
    expect(found.get(2)).toEqual({ ...BAR_LAYOUT.notify, mult: 2 });
    expect(found.get(3)).toEqual(BAR_LAYOUT.isr);
    expect(found.get(4)).toEqual(BAR_LAYOUT.device);
  });
});

describe("feature negotiation and status", () => {
  it("offers 64 feature bits through the select window", () => {
    const { driver } = setup();
    expect(driver.features()).toBe((1n << 32n) | (1n << 28n) | 0b1111n); // + INDIRECT_DESC from the transport
  });

  it("sets FEATURES_OK for an offered, valid set and activates on DRIVER_OK", () => {
    const { driver, dev, t, r, C } = setup();
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    driver.accept((1n << 32n) | 2n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(driver.status() & STATUS.FEATURES_OK).toBeTruthy();
    expect(t.negotiated).toBe((1n << 32n) | 2n);
    expect(r(C + 0x12, 2)).toBe(3); // num_queues follows the negotiated features
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    expect(dev.activated).toEqual({ features: (1n << 32n) | 2n, queues: 3 });
  });

  it("refuses FEATURES_OK for bits never offered", () => {
    const { driver, diags, t } = setup();
    driver.accept((1n << 32n) | (1n << 40n));
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(driver.status() & STATUS.FEATURES_OK).toBe(0);
    expect(t.negotiated).toBe(0n);
    expect(diags.map((d) => d.kind)).toContain("features-not-offered");
  });

  it("refuses FEATURES_OK when the device's feature rules fail", () => {
    const { driver, diags } = setup();
    driver.accept((1n << 32n) | 4n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(driver.status() & STATUS.FEATURES_OK).toBe(0);
    expect(diags.find((d) => d.kind === "features-refused")?.message).toMatch(/bit 2 requires bit 3/);
  });

  it("ignores feature writes after FEATURES_OK", () => {
    const { driver, diags, t } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.accept((1n << 32n) | 1n);
    expect(t.negotiated).toBe(1n << 32n);
    expect(diags.map((d) => d.kind)).toContain("features-changed-after-features-ok");
  });

  it("resets everything on status 0", () => {
    const { driver, dev, t, pci } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.setupQueue(0, 16, 0x1000);
    dev.handle.interruptConfig();
    expect(pci.irq).toBe(true);
    driver.setStatus(0);
    expect(driver.status()).toBe(0);
    expect(t.negotiated).toBe(0n);
    expect(t.queues[0].enabled).toBe(false);
    expect(pci.irq).toBe(false);
    expect(dev.resets).toBe(1);
  });

  it("diagnoses a driver clearing status bits without a reset", () => {
    const { driver, diags } = setup();
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    driver.setStatus(STATUS.ACKNOWLEDGE);
    expect(diags.map((d) => d.kind)).toContain("status-bits-cleared");
  });
});

describe("read-only fields", () => {
  it("diagnoses and ignores writes to device_feature, num_queues, config_generation, queue_notify_off and ISR", () => {
    const { w, r, diags, C, driver } = setup();
    const before = driver.features();
    w(C + 0x04, 4, 0xffffffff);
    w(C + 0x12, 2, 9);
    w(C + 0x15, 1, 7);
    w(C + 0x1e, 2, 5);
    w(BAR_LAYOUT.isr.offset, 1, 3);
    expect(driver.features()).toBe(before);
    expect(r(C + 0x12, 2)).toBe(3); // before FEATURES_OK: the queues of every offered feature
    expect(r(C + 0x15, 1)).toBe(0);
    expect(diags.filter((d) => d.kind === "write-to-read-only-field")).toHaveLength(5);
  });
});

describe("queues", () => {
  it("takes 64-bit ring addresses written as two 32-bit halves", () => {
    const { driver, t } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.setupQueue(1, 32, 0x4000);
    const q = t.queues[1];
    expect(q.enabled).toBe(true);
    expect([q.size, q.descAddr, q.driverAddr]).toEqual([32, 0x4000, 0x4000 + 16 * 32]);
  });

  it("refuses to enable a queue whose rings lie outside RAM: DEVICE_NEEDS_RESET", () => {
    const { driver, t, diags, mem } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.setupQueue(0, 16, mem.size - 64);
    expect(t.queues[0].enabled).toBe(false);
    expect(driver.status() & STATUS.DEVICE_NEEDS_RESET).toBeTruthy();
    expect(diags.map((d) => d.kind)).toContain("queue-enable-refused");
    expect(mem.guardsIntact()).toBe(true);
  });

  it("reports queue_size 0 and diagnoses writes for a queue index past num_queues", () => {
    const { w, r, C, diags } = setup();
    w(C + 0x16, 2, 7);
    expect(r(C + 0x18, 2)).toBe(0);
    w(C + 0x18, 2, 16);
    expect(diags.map((d) => d.kind)).toContain("queue-select-out-of-range");
  });

  it("delivers notifications only for enabled queues; those before DRIVER_OK at DRIVER_OK", () => {
    const { driver, dev, w, diags } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.setupQueue(0, 16, 0x1000);
    w(BAR_LAYOUT.notify.offset, 2, 0);
    expect(dev.notified).toEqual([]); // no DRIVER_OK yet: held back
    expect(diags.map((d) => d.kind)).toEqual(["notify-before-driver-ok"]);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    expect(dev.notified).toEqual([0]);
    w(BAR_LAYOUT.notify.offset, 2, 0);
    w(BAR_LAYOUT.notify.offset + 2, 2, 1); // queue 1 never enabled
    w(BAR_LAYOUT.notify.offset + 8, 2, 9); // no such queue
    expect(dev.notified).toEqual([0, 0]);
    expect(diags.filter((d) => d.kind === "notify-disabled-queue")).toHaveLength(2);
  });
});

describe("interrupts", () => {
  it("raises INTx on a config change, bumps config_generation, and clears on ISR read", () => {
    const { dev, pci, r, C } = setup();
    dev.handle.interruptConfig();
    expect(pci.irq).toBe(true);
    expect(r(C + 0x15, 1)).toBe(1);
    expect(r(BAR_LAYOUT.isr.offset, 1)).toBe(2);
    expect(pci.irq).toBe(false);
    expect(r(BAR_LAYOUT.isr.offset, 1)).toBe(0);
  });

  it("raises the queue interrupt bit for used buffers", () => {
    const { dev, pci, r, driver } = setup();
    driver.accept(1n << 32n);
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    driver.setupQueue(0, 16, 0x1000);
    dev.handle.interruptQueue(0);
    expect(pci.irq).toBe(true);
    expect(r(BAR_LAYOUT.isr.offset, 1)).toBe(1);
  });
});

describe("persistence", () => {
  it("round-trips transport state", () => {
    const a = setup();
    a.driver.accept((1n << 32n) | 2n);
    a.driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    a.driver.setupQueue(2, 32, 0x8000);
    const saved = JSON.parse(JSON.stringify(a.t.saveState()));
    const b = setup();
    b.t.restoreState(saved);
    expect(b.driver.status()).toBe(a.driver.status());
    expect(b.t.negotiated).toBe((1n << 32n) | 2n);
    expect(b.t.queues[2].enabled).toBe(true);
    expect(b.t.queues[2].descAddr).toBe(0x8000);
  });
});
