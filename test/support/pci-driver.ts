/**
 * A scripted virtio-pci driver over a VirtioPciTransport on test memory: a fake PCI host, a minimal
 * device (two queues, three with feature bit 1; refuses bit 2 without bit 3), and BAR accessors.
 */
import { BAR_LAYOUT, VirtioPciTransport, type TransportDiagnostic } from "../../src/virtio/pci-transport.js";
import type { VirtioDeviceBackend, VirtioTransportHandle } from "../../src/virtio/device-backend.js";
import type { PciDeviceRegistration, PciHost } from "../../src/virtio/pci-host.js";
import type { Virtqueue } from "../../src/virtio/virtqueue.js";
import { createTestMemory } from "./test-memory.js";
import { referenceHotPath } from "../../src/hotpath/reference.js";

export class FakePci implements PciHost {
  dev!: PciDeviceRegistration;
  irq = false;
  irqEdges = 0;
  registerDevice(d: PciDeviceRegistration) {
    this.dev = d;
  }
  raiseIrq() {
    this.irq = true;
    this.irqEdges++;
  }
  lowerIrq() {
    this.irq = false;
  }
}

/** A minimal device: two queues, or three when feature bit 1 is accepted; refuses bit 2 without bit 3. */
export class FakeDevice implements VirtioDeviceBackend {
  deviceType = 5;
  configSize = 8;
  config = new Uint8Array(8);
  notified: number[] = [];
  activated: { features: bigint; queues: number } | null = null;
  resets = 0;
  handle!: VirtioTransportHandle;
  offeredFeatures() {
    return (1n << 32n) | 0b1111n;
  }
  validateFeatures(f: bigint) {
    return f & 4n && !(f & 8n) ? "bit 2 requires bit 3" : null;
  }
  queueCount(f: bigint) {
    return f & 2n ? 3 : 2;
  }
  queueMaxSize() {
    return 64;
  }
  readConfig(o: number, w: number) {
    let v = 0;
    for (let i = 0; i < w; i++) v |= this.config[o + i] << (8 * i);
    return v >>> 0;
  }
  writeConfig(o: number, w: number, v: number) {
    for (let i = 0; i < w; i++) this.config[o + i] = (v >>> (8 * i)) & 0xff;
  }
  attach(t: VirtioTransportHandle) {
    this.handle = t;
  }
  activate(features: bigint, queues: readonly Virtqueue[]) {
    this.activated = { features, queues: queues.length };
  }
  notify(i: number) {
    this.notified.push(i);
  }
  reset() {
    this.resets++;
  }
}

export function setup() {
  const mem = createTestMemory(1 << 20);
  const pci = new FakePci();
  const dev = new FakeDevice();
  const diags: TransportDiagnostic[] = [];
  const t = new VirtioPciTransport(pci, mem, referenceHotPath(mem), dev, {
    pciId: 0x0e << 3,
    port: 0x9000,
    onDiagnostic: (d) => diags.push(d),
  });
  const r = (o: number, w: 1 | 2 | 4) => pci.dev.io.read(o, w);
  const w = (o: number, width: 1 | 2 | 4, v: number) => pci.dev.io.write(o, width, v);
  const C = BAR_LAYOUT.common.offset;
  const driver = {
    features(): bigint {
      w(C + 0x00, 4, 0);
      const lo = r(C + 0x04, 4);
      w(C + 0x00, 4, 1);
      const hi = r(C + 0x04, 4);
      return (BigInt(hi) << 32n) | BigInt(lo);
    },
    accept(f: bigint) {
      w(C + 0x08, 4, 0);
      w(C + 0x0c, 4, Number(f & 0xffffffffn));
      w(C + 0x08, 4, 1);
      w(C + 0x0c, 4, Number(f >> 32n));
    },
    status: () => r(C + 0x14, 1),
    setStatus: (s: number) => w(C + 0x14, 1, s),
    /** Lays a queue out in RAM at `at` and enables it, as Linux does (64-bit addresses as two halves). */
    setupQueue(index: number, size: number, at: number) {
      w(C + 0x16, 2, index);
      w(C + 0x18, 2, size);
      const desc = at, avail = at + 16 * size, used = (avail + 6 + 2 * size + 3) & ~3;
      for (const [off, addr] of [[0x20, desc], [0x28, avail], [0x30, used]] as const) {
        w(C + off, 4, addr);
        w(C + off + 4, 4, 0);
      }
      w(C + 0x1c, 2, 1);
    },
  };
  return { mem, pci, dev, t, r, w, driver, diags, C };
}

