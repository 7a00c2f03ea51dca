/**
 * The PCI/port-I/O services a virtio-pci transport needs from the machine it is plugged into.
 * `src/v86/adapter.ts` implements this over v86; tests implement it with a scripted fake.
 */
export interface PortHandlers {
  read(offset: number, width: 1 | 2 | 4): number;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
}

export interface PciDeviceRegistration {
  /** bus/device/function number: device << 3 | function. */
  pciId: number;
  name: string;
  /** The 256-byte type-0 configuration space image (BARs already holding their initial port | 1). */
  configSpace: Uint8Array;
  /** One I/O BAR: its initial port (>= 0x1000, aligned to size) and power-of-two size. */
  bar: { port: number; size: number };
  /** Serves every access to the BAR at offset 0..size-1, wherever the BIOS moves it. */
  io: PortHandlers;
}

export interface PciHost {
  registerDevice(device: PciDeviceRegistration): void;
  raiseIrq(pciId: number): void;
  lowerIrq(pciId: number): void;
}
