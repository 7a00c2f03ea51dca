// Test double of the guest console for the harness's unit tests: a shell that answers the harness's
// marker-wrapped commands like busybox sh would, and a Launcher built on it.
import { createHash } from "node:crypto";
import { GuestShell, SerialLines } from "../../src/harness/serial.js";
import type { BalloonHostLike, Launcher } from "../../src/harness/types.js";

export type Behaviour = (cmd: string) => { out?: string[]; status?: number } | "hang";

/** Answers one typed line on `serial`; false when the line is not a harness command. */
function answer(text: string, behaviour: Behaviour, push: (t: string) => void, delay: number): boolean {
  const m = /^echo (__HB\w+)""(__); (.*); echo (__HE\w+)""(_)\$\?(__)\n$/.exec(text);
  if (!m) return false;
  const r = behaviour(m[3]);
  if (r === "hang") return true;
  setTimeout(() => {
    push(`~ # ${m[1]}${m[2]}\r\n`);
    for (const l of r.out ?? []) push(l + "\r\n");
    push(`${m[4]}${m[5]}${r.status ?? 0}${m[6]}\r\n`);
  }, delay);
  return true;
}

/** A fake guest shell: answers every typed line like busybox sh would, after `delay` ms. */
export function fakeGuest(behaviour: Behaviour, delay = 1) {
  const serial = new SerialLines();
  const sent: string[] = [];
  const send = (text: string) => {
    sent.push(text);
    answer(text, behaviour, (t) => serial.push(t), delay);
  };
  return { serial, shell: new GuestShell(serial, send), sent };
}

/**
 * A Launcher whose guest prints `boot` lines on the console, then answers commands with `behaviour`
 * (none before `shellAfterMs`: probes typed earlier are lost, as before a real shell starts).
 */
export function fakeLauncher(opts: { boot?: string[]; behaviour: Behaviour; shellAfterMs?: number; balloon?: BalloonHostLike | null }): Launcher & { destroyed: number } {
  const l = (async (_boot, onSerial, onBalloon) => {
    if (opts.balloon) onBalloon(opts.balloon);
    const t0 = Date.now();
    setTimeout(() => onSerial((opts.boot ?? []).map((x) => x + "\r\n").join("")), 1);
    return {
      vm: {
        send: (text: string) => {
          if (Date.now() - t0 >= (opts.shellAfterMs ?? 0)) answer(text, opts.behaviour, onSerial, 1);
        },
        destroy: async () => {
          l.destroyed++;
        },
      },
      balloon: opts.balloon ?? null,
    };
  }) as Launcher & { destroyed: number };
  l.destroyed = 0;
  return l;
}

/** Adds the harness's upload commands (mkdir, printf >> chunk, base64 -d + sha256sum) over `files`. */
export function withFiles(behaviour: Behaviour, files = new Map<string, string>()): Behaviour {
  return (cmd) => {
    let m: RegExpExecArray | null;
    if ((m = /^mkdir -p \S+ && : > (\S+)$/.exec(cmd))) files.set(m[1], "");
    else if ((m = /^printf %s '([^']*)' >> (\S+)$/.exec(cmd))) files.set(m[2], files.get(m[2]) + m[1]);
    else if ((m = /^base64 -d (\S+) > (\S+) && .* sha256sum \S+$/.exec(cmd))) {
      const data = Buffer.from(files.get(m[1])!, "base64");
      files.set(m[2], data.toString("utf8"));
      return { out: [`${createHash("sha256").update(data).digest("hex")}  ${m[2]}`] };
    } else return behaviour(cmd);
    return {};
  };
}
