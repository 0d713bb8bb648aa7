// The Multus NetworkAttachmentDefinition API (k8s.cni.cncf.io/v1, defined by the Network Plumbing Working
// Group's "Kubernetes Network Custom Resource Definition De-facto Standard"), as far as Spiderpool writes it:
// names, REST paths and the object shape.

import type { ObjectMeta } from "../api/types.ts";

export const NAD_GROUP = "k8s.cni.cncf.io";
export const NAD_VERSION = "v1";
export const NAD_API_VERSION = `${NAD_GROUP}/${NAD_VERSION}`;
export const NAD_KIND = "NetworkAttachmentDefinition";
export const NAD_PLURAL = "network-attachment-definitions";

/** Every NAD of the cluster (list and watch). */
export const NADS_PATH = `/apis/${NAD_API_VERSION}/${NAD_PLURAL}`;

/** The NADs of one namespace, or one NAD. */
export function nadPath(namespace: string, name?: string): string {
  const base = `/apis/${NAD_API_VERSION}/namespaces/${encodeURIComponent(namespace)}/${NAD_PLURAL}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

export interface NetworkAttachmentDefinition {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  /** `config` is the CNI configuration (a conf or conflist, as JSON text); absent for a NAD Multus resolves
   * from a file of the same name on the node. */
  spec?: { config?: string };
}
