// Admission validation of the coordinator settings, shared by SpiderCoordinator and the `coordinator` block of
// a SpiderMultusConfig: mode, pod CIDR type, hijack CIDRs, policy routes, MAC prefix and the numeric knobs.

import { familyName, parseCIDR, parseIP } from "../../ip/mod.ts";
import { COORDINATOR_MODES, KIND, POD_CIDR_TYPES } from "../constants.ts";
import type { CoordinatorSpec, SpiderCoordinator } from "../types.ts";
import { type FieldError, ipMessage, Problems } from "./common.ts";
import { interfaceNameProblem } from "./names.ts";

/** Validates a SpiderCoordinator (run after defaultCoordinator); `podCIDRType` is required. */
export function validateCoordinator(c: SpiderCoordinator): FieldError[] {
  const p = new Problems(KIND.coordinator, c.metadata?.name);
  checkCoordinatorSpec(p, "spec", c.spec, true);
  return p.errors;
}

/** Records the problems of a CoordinatorSpec found at `path`. */
export function checkCoordinatorSpec(
  p: Problems,
  path: string,
  spec: CoordinatorSpec | undefined,
  requirePodCIDRType: boolean,
): void {
  const s = spec ?? {};
  if (s.mode !== undefined && !COORDINATOR_MODES.includes(s.mode)) {
    p.add(
      `${path}.mode`,
      `${path}.mode ${
        JSON.stringify(s.mode)
      } is not a coordinator mode; use auto, underlay, overlay or disabled`,
    );
  }
  if (s.podCIDRType === undefined || s.podCIDRType === null || (s.podCIDRType as string) === "") {
    if (requirePodCIDRType) {
      p.add(
        `${path}.podCIDRType`,
        `${path}.podCIDRType is required; set auto, cluster, calico, cilium or none`,
      );
    }
  } else if (!POD_CIDR_TYPES.includes(s.podCIDRType)) {
    p.add(
      `${path}.podCIDRType`,
      `${path}.podCIDRType ${
        JSON.stringify(s.podCIDRType)
      } is not supported; use auto, cluster, calico, cilium or none`,
    );
  }
  // Host bits are allowed in hijackCIDR and policyRoutes dst, as upstream allows them; defaulting clears them.
  (s.hijackCIDR ?? []).forEach((text, i) => {
    const at = `${path}.hijackCIDR[${i}]`;
    try {
      parseCIDR(text, { canonical: false });
    } catch (e) {
      p.add(at, `${at}: ${ipMessage(e)}`);
    }
  });
  (s.policyRoutes ?? []).forEach((r, i) => {
    const at = `${path}.policyRoutes[${i}]`;
    let dstFamily;
    try {
      dstFamily = parseCIDR(r?.dst ?? "", { canonical: false }).family;
    } catch (e) {
      p.add(`${at}.dst`, `${at}.dst: ${ipMessage(e)}`);
    }
    let gwFamily;
    try {
      gwFamily = parseIP(r?.gw ?? "").family;
    } catch (e) {
      p.add(`${at}.gw`, `${at}.gw: ${ipMessage(e)}`);
    }
    if (dstFamily !== undefined && gwFamily !== undefined && dstFamily !== gwFamily) {
      p.add(
        `${at}.gw`,
        `${at}: dst ${JSON.stringify(r.dst)} is ${familyName(dstFamily)} but gw ${JSON.stringify(r.gw)} is ` +
          `${familyName(gwFamily)}; use a gateway of the destination's family`,
      );
    }
  });
  if (s.podMACPrefix !== undefined && s.podMACPrefix !== "") {
    const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/.exec(s.podMACPrefix);
    if (!m) {
      p.add(
        `${path}.podMACPrefix`,
        `${path}.podMACPrefix ${JSON.stringify(s.podMACPrefix)} is not two hex bytes; use the form "0a:1b"`,
      );
    } else if ((parseInt(m[1], 16) & 1) === 1) {
      p.add(
        `${path}.podMACPrefix`,
        `${path}.podMACPrefix ${
          JSON.stringify(s.podMACPrefix)
        } is a multicast prefix (lowest bit of the first ` +
          `byte is 1); use an even first byte, e.g. "${
            (parseInt(m[1], 16) & 0xfe).toString(16).padStart(2, "0")
          }:${m[2]}"`,
      );
    }
  }
  if (s.podDefaultRouteNIC !== undefined && s.podDefaultRouteNIC !== "") {
    const problem = interfaceNameProblem(s.podDefaultRouteNIC);
    if (problem) p.add(`${path}.podDefaultRouteNIC`, `${path}.podDefaultRouteNIC ${problem}`);
  }
  checkInt(
    p,
    `${path}.hostRuleTable`,
    s.hostRuleTable,
    1,
    0xffffffff,
    "a routing table id from 1 to 4294967295",
  );
  if (s.podRPFilter !== undefined && s.podRPFilter !== null) {
    if (!Number.isInteger(s.podRPFilter) || s.podRPFilter > 2) {
      p.add(
        `${path}.podRPFilter`,
        `${path}.podRPFilter ${s.podRPFilter} is not an rp_filter mode; use 0 (off), 1 (strict), 2 (loose) or a ` +
          `negative value to leave the pod's setting alone`,
      );
    }
  }
  checkInt(
    p,
    `${path}.txQueueLen`,
    s.txQueueLen,
    0,
    0xffffffff,
    "a queue length ≥ 0 (0 leaves it unchanged)",
  );
  checkInt(p, `${path}.vethMTU`, s.vethMTU, 1, 65535, "an MTU from 1 to 65535");
  if (s.vethLinkAddress !== undefined && s.vethLinkAddress !== "") {
    try {
      parseIP(s.vethLinkAddress);
    } catch (e) {
      p.add(`${path}.vethLinkAddress`, `${path}.vethLinkAddress: ${ipMessage(e)}; or leave it empty`);
    }
  }
}

function checkInt(
  p: Problems,
  path: string,
  v: number | undefined,
  min: number,
  max: number,
  expected: string,
): void {
  if (v === undefined || v === null) return;
  if (!Number.isInteger(v) || v < min || v > max) {
    p.add(path, `${path} ${v} is out of range; use ${expected}`);
  }
}
