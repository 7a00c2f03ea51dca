/** The one vocabulary: every layer's names come from src/vocabulary.ts and agree with the device. */
import { describe, expect, expectTypeOf, it } from "vitest";
import type { BalloonFaults } from "../src/balloon/context.js";
import type { BalloonEvents } from "../src/balloon/events.js";
import { BALLOON_F, OPTIONAL_FEATURES } from "../src/balloon/features.js";
import { describeOffer, faultByName, featureByName, parseFeatureSpec, resolveFeatures } from "../src/harness/descriptor.js";
import {
  BALLOON_EVENTS, FAULTS, FEATURES, findFault, parseFeatures, type BalloonEventName, type FaultKey,
} from "../src/vocabulary.js";

describe("vocabulary", () => {
  it("names each feature bit once, and the device's table is built from it", () => {
    expect(new Set(FEATURES.map((f) => f.bit)).size).toBe(FEATURES.length);
    expect(new Set(FEATURES.map((f) => f.name)).size).toBe(FEATURES.length);
    expect(OPTIONAL_FEATURES).toEqual(FEATURES.map((f) => f.spec));
    for (const f of FEATURES) expect(BALLOON_F[f.spec]).toBe(f.bit);
    expect(BALLOON_F.VERSION_1).toBe(32);
  });

  it("one public name per bit, other spellings only as aliases", () => {
    expect(parseFeatures("hint, FREE_PAGE_HINT, virtio_balloon_f_free_page_hint, 3, hinting")).toEqual(["hinting"]);
    expect(featureByName("hint")).toBe("FREE_PAGE_HINT");
    // The harness prints the public name, whatever the descriptor said.
    expect(describeOffer(resolveFeatures(parseFeatureSpec("stats,hint")))).toBe("stats,hinting");
    expect(() => parseFeatures("stats,bogus")).toThrow(/unknown feature "bogus".*known: must-tell-host, stats/);
  });

  it("fault names: public names, aliases and the device's keys all resolve", () => {
    expect(findFault("lie")?.key).toBe("lieAboutInit");
    expect(findFault("lieAboutInit")?.name).toBe("lie-about-init");
    expect(faultByName("drop-used")).toBe("dropUsedEvery=4");
    expect(faultByName("config-storm=5@1+toggle")).toBe("configStorm=5@1+toggle");
    expect(() => faultByName("withhold-interrupts=3")).toThrow(/takes no value/);
    expect(() => faultByName("nope")).toThrow(/known: lie-about-init/);
  });

  it("agrees with the device's types (checked by tsc)", () => {
    expectTypeOf<FaultKey>().toEqualTypeOf<keyof BalloonFaults>();
    expectTypeOf<BalloonEventName>().toEqualTypeOf<keyof BalloonEvents>();
    expect(BALLOON_EVENTS.length).toBeGreaterThan(0);
    expect(FAULTS.length).toBeGreaterThan(0);
  });
});
