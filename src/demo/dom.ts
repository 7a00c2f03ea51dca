/** Tiny DOM helpers for the demo page. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`demo page: #${id} is missing`);
  return e as T;
}

type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") e.className = String(v);
    else if (k === "text") e.textContent = String(v);
    else if (k in e && typeof (e as unknown as Record<string, unknown>)[k] !== "function" && k !== "list")
      (e as unknown as Record<string, unknown>)[k] = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  e.append(...children);
  return e;
}

export const MiB = 1048576;
export const PAGE = 4096;
export const pagesToMiB = (p: number) => (p * PAGE) / MiB;
export const mibToPages = (m: number) => Math.round((m * MiB) / PAGE);

export function fmtBytes(n: number): string {
  if (n >= 10 * MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function fmtMiB(n: number, digits = 1): string {
  return `${n.toFixed(digits)} MiB`;
}
