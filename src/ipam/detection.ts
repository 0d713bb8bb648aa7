// Which on-the-wire checks the IPAM plugin is asked to make for a pod's addresses (the `enable*Detection` fields
// of each IpConfig): the ConfigMap's switches, except that the target pod of a running KubeVirt live migration
// skips the conflict check. Its VM's address is still live on the source pod until the migration hands it over,
// so the check would always find the address in use and the migration could never finish (upstream does the
// same).

import { ANNOTATION } from "../api/constants.ts";
import type { DetectionFlags } from "./routes.ts";
import { isKubevirtPod, type PodLike, type TopController, type WorkloadFlags } from "./workload.ts";

/**
 * The VirtualMachineInstanceMigration `pod` is the target of (its `kubevirt.io/migrationJobName`), when that
 * could turn conflict detection off: detection on, KubeVirt fixed IPs on, the pod a VMI's. Undefined otherwise;
 * the caller then asks the API server whether that migration exists.
 */
export function migrationJobOf(
  pod: PodLike,
  top: TopController,
  flags: WorkloadFlags & DetectionFlags,
): string | undefined {
  if (!flags.enableIPConflictDetection || !isKubevirtPod(top, flags)) return undefined;
  return pod.metadata.annotations?.[ANNOTATION.kubevirtMigrationJobName] || undefined;
}

/** The flags told to the plugin: the ConfigMap's, without the conflict check for a live-migration target. */
export function detectionFlagsFor(flags: DetectionFlags, migrationTarget: boolean): DetectionFlags {
  return {
    enableIPConflictDetection: flags.enableIPConflictDetection && !migrationTarget,
    enableGatewayDetection: flags.enableGatewayDetection,
  };
}
