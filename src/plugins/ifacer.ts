// The `ifacer` CNI plugin (creates VLAN and bond parent interfaces on the host): not in this release.
import { unavailablePlugin } from "./unavailable.ts";

export const main = unavailablePlugin("ifacer");
