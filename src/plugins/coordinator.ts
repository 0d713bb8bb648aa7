// The `coordinator` CNI plugin (multi-NIC policy routing, host veth, MAC prefix): not in this release.
import { unavailablePlugin } from "./unavailable.ts";

export const main = unavailablePlugin("coordinator");
