/**
 * The PCI side of a modern virtio-pci device: its type-0 configuration space image with the virtio
 * vendor capabilities (virtio 1.2 §4.1.4), all pointing into the one I/O BAR laid out by `BAR_LAYOUT`.
 */
export const VIRTIO_PCI_VENDOR = 0x1af4;

/** Layout of the single I/O BAR. */
export const BAR_LAYOUT = {
  size: 256,
  common: { offset: 0x00, length: 0x3c },
  isr: { offset: 0x40, length: 0x04 },
  device: { offset: 0x60, length: 0x20 },
  notify: { offset: 0x80, length: 0x40 },
  notifyMultiplier: 2,
} as const;

const CAP_COMMON = 1;
const CAP_NOTIFY = 2;
const CAP_ISR = 3;
const CAP_DEVICE = 4;

/** PCI type-0 header plus the virtio vendor capabilities (4.1.4), all pointing into BAR 0. */
export function buildConfigSpace(deviceType: number, port: number): Uint8Array {
  const space = new Uint8Array(256);
  const dv = new DataView(space.buffer);
  dv.setUint16(0x00, VIRTIO_PCI_VENDOR, true);
  dv.setUint16(0x02, 0x1040 + deviceType, true); // 4.1.2: modern-only device id
  dv.setUint16(0x06, 0x0010, true); // status: capabilities list present
  space[0x08] = 1; // 4.1.2.1: revision 1 for a modern-only device
  space[0x0b] = 0xff; // class: other (as QEMU's balloon)
  dv.setUint32(0x10, (port & ~3) | 1, true); // BAR0: I/O space
  dv.setUint16(0x2c, VIRTIO_PCI_VENDOR, true);
  dv.setUint16(0x2e, 0x40 + deviceType, true); // 4.1.2: subsystem id >= 0x40 for modern devices
  space[0x3d] = 1; // interrupt pin INTA#
  const caps = [
    { type: CAP_COMMON, ...BAR_LAYOUT.common },
    { type: CAP_NOTIFY, ...BAR_LAYOUT.notify },
    { type: CAP_ISR, ...BAR_LAYOUT.isr },
    { type: CAP_DEVICE, ...BAR_LAYOUT.device },
  ];
  space[0x34] = 0x40;
  let at = 0x40;
  caps.forEach((cap, i) => {
    const len = cap.type === CAP_NOTIFY ? 20 : 16;
    const next = i === caps.length - 1 ? 0 : at + 20;
    space[at] = 0x09; // vendor-specific capability
    space[at + 1] = next;
    space[at + 2] = len;
    space[at + 3] = cap.type;
    space[at + 4] = 0; // BAR 0
    dv.setUint32(at + 8, cap.offset, true);
    dv.setUint32(at + 12, cap.length, true);
    if (cap.type === CAP_NOTIFY) dv.setUint32(at + 16, BAR_LAYOUT.notifyMultiplier, true);
    at += 20;
  });
  return space;
}
